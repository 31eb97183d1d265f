"""Cold items over real HTTP: the production server (``python -m simrec.serving.server``,
its loader child process building the image) answers ``/similar`` and
``/recommendations`` for skus only the catalog lists, from their attributes, and blends
a few-shopper item's row, exactly as ``simrec.core.content`` computes them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from simrec.core.content import REASON_ATTRIBUTES, ContentIndex, ContentParams
from simrec.core.snapshot import ModelSnapshot
from tests.http.served_app import TENANT, ServedApp, catalog_model, publish

NEW = ("new-shoe", "new-bag")


def cold_model() -> ModelSnapshot:
    """``catalog_model`` (its items 1..40 shoppers) with two catalog-only skus."""
    base = catalog_model()
    catalog = base.catalog.to_pydict()
    for sku, twin in zip(NEW, (3, 4), strict=True):  # sku-003 is shoes/globex, sku-004 bags/acme
        for name in catalog:
            catalog[name].append(sku if name == "sku" else catalog[name][twin])
    catalog["title"][-2:] = ["Item number 3 new", "Item number 4 new"]
    return dataclasses.replace(base, catalog=catalog)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cold")
    bucket = str(tmp / "bucket")
    model = cold_model()
    publish(bucket, model)
    env = {"SIMREC_DATA_URI": bucket, "SIMREC_MODELS_URI": "", "SIMREC_TENANT": TENANT}
    app = ServedApp(tmp, env)
    yield app, model
    app.stop()


def get_json(app: ServedApp, target: str) -> tuple[int, dict]:
    status, _, body = app.get(target)
    return status, json.loads(body)


def index_of(model: ModelSnapshot) -> ContentIndex:
    columns = model.catalog.to_pydict()
    return ContentIndex.build(columns, model.skus, model.popularity, ContentParams())


def test_similar_answers_a_catalog_only_sku_from_its_attributes(served) -> None:
    app, model = served
    status, body = get_json(app, "/similar?sku=new-shoe&n=5")
    assert status == 200, body
    cols, sims = index_of(model).content_row("new-shoe")
    assert len(cols) >= 5
    assert [it["sku"] for it in body["items"]] == [model.skus[j] for j in cols[:5]]
    np.testing.assert_allclose([it["score"] for it in body["items"]], sims[:5], rtol=1e-6)
    assert {it["reason"] for it in body["items"]} == {REASON_ATTRIBUTES}
    # Its twin sku-003 (same category, brand and title words) comes first.
    assert body["items"][0]["sku"] == "sku-003" and body["items"][0]["category"] == "shoes"
    # Filters apply as to any answer; a sku nobody lists is still unknown.
    status, body = get_json(app, "/similar?sku=new-bag&category=bags&n=50")
    assert status == 200 and body["items"] and {it["category"] for it in body["items"]} == {"bags"}
    status, body = get_json(app, "/similar?sku=nobody-lists-me")
    assert status == 404 and body["sku"] == "nobody-lists-me"


def test_recommendations_for_a_new_item_are_not_the_fallback(served) -> None:
    app, model = served
    status, body = get_json(app, "/recommendations?browsed=new-bag&n=3")
    assert status == 200 and body["fallback"] is False, body
    cols, _ = index_of(model).content_row("new-bag")
    assert [it["sku"] for it in body["items"]] == [model.skus[j] for j in cols[:3]]
    assert all(it["because"] == [{"sku": "new-bag", "share": 1.0}] for it in body["items"])


def test_a_few_shopper_item_gets_the_blended_row(served) -> None:
    app, model = served
    i = 5  # sku-005: popularity (5 * 7) % 40 + 1 = 36 < warm_users
    assert model.popularity[i] < ContentParams().warm_users
    status, body = get_json(app, f"/similar?sku={model.skus[i]}&n=50")
    assert status == 200
    cols, sims, reasons = index_of(model).blended_row(model.skus[i], i, model.neighbors(i))
    assert [it["sku"] for it in body["items"]] == [model.skus[j] for j in cols]
    assert [it["reason"] for it in body["items"]] == reasons
    # Both sources answer: its own events (weight 36/37) and its attributes (1/37).
    assert REASON_ATTRIBUTES in reasons
    assert {"events", "events+attributes"} & set(reasons)
    assert len(cols) > len(model.neighbors(i)[0])
    np.testing.assert_allclose([it["score"] for it in body["items"]], sims, rtol=1e-6)


def test_recommendations_score_a_few_shopper_item_on_its_blended_row(served) -> None:
    app, model = served
    i = 5
    cols, sims, _ = index_of(model).blended_row(model.skus[i], i, model.neighbors(i))
    status, body = get_json(app, f"/recommendations?browsed={model.skus[i]}&n=5")
    assert status == 200 and body["fallback"] is False
    assert [it["sku"] for it in body["items"]] == [model.skus[j] for j in cols[:5]]
    # browsed weighs 0.5 (the default action weights)
    np.testing.assert_allclose([it["score"] for it in body["items"]], 0.5 * sims[:5], rtol=1e-6)
