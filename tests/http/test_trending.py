"""``GET /trending`` through the real WSGI app, over a model the model builder made from
a hand-made items output: the ranking, the category filter, exclusions and the 400s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from werkzeug.test import Client

from simrec.core import model_builder
from simrec.core.snapshot import catalog_table
from tests.http.served_app import TENANT as SERVED_TENANT
from tests.http.served_app import ServedApp, catalog_model, get_json, model_client, publish

TENANT = "shop"
# window_days 10 -> 7 recent days, 3 prior (trending defaults: smoothing 1, support 5).
#   sku  recent prior  growth (r/7 + 1) / (p/3 + 1)   category
ITEMS = [
    ("a", 14.0, 3.0),  # (2+1)/(1+1) = 1.5              X
    ("b", 7.0, 0.0),  # (1+1)/(0+1) = 2.0               Y
    ("c", 28.0, 3.0),  # (4+1)/(1+1) = 2.5              X
    ("d", 3.0, 0.0),  # support 3 < 5: never trends     X
    ("e", 7.0, 6.0),  # (1+1)/(2+1) = 2/3               Y
]
CATALOG = {
    "sku": ["a", "b", "c", "d", "e"],
    "category": ["X", "Y", "X", "X", "Y"],
    "in_stock": [True, True, False, True, True],
    "title": ["A", "B", "C", "D", "E"],
}


def client_for(tmp_path: Path, catalog: dict | None = CATALOG) -> Client:
    items = [{"sku": s, "users": 1, "weight": r + p, "recent_weight": r, "prior_weight": p}
             for s, r, p in ITEMS]  # fmt: skip
    rows = [{"sku": "a", "items": ["b"], "scores": [0.5], "users": [1.0]}]
    snap = model_builder.build_snapshot(
        rows, items, {"version": "v1", "tenant": TENANT, "params": {"window_days": 10}}
    )
    if catalog is not None:
        snap.catalog = catalog_table(catalog)
    return model_client(tmp_path, TENANT, snap)


def get(client: Client, query: str) -> tuple[int, dict]:
    return get_json(client, "/trending", query)


def ranked(body: dict) -> list[tuple[str, float]]:
    return [(item["sku"], round(item["score"], 12)) for item in body["items"]]


def test_trending_ranks_by_growth_with_catalog_attributes(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    status, body = get(client, "")
    assert status == 200 and body["model_version"] == "v1"
    assert ranked(body) == [("c", 2.5), ("b", 2.0), ("a", 1.5), ("e", round(2 / 3, 12))]
    assert body["items"][0] == {"sku": "c", "score": 2.5, "category": "X", "in_stock": False,
                                "attributes": {"title": "C"}}  # fmt: skip
    assert ranked(get(client, "n=2")[1]) == [("c", 2.5), ("b", 2.0)]


def test_trending_filters(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert [s for s, _ in ranked(get(client, "category=X")[1])] == ["c", "a"]
    assert [s for s, _ in ranked(get(client, "category=Y&n=1")[1])] == ["b"]
    assert ranked(get(client, "category=nothing")[1]) == []
    assert [s for s, _ in ranked(get(client, "in_stock_only=true")[1])] == ["b", "a", "e"]
    assert [s for s, _ in ranked(get(client, "exclude=c,b&tenant=shop")[1])] == ["a", "e"]


@pytest.mark.parametrize(
    ("query", "field", "status"),
    [("n=0", "n", 400), ("n=abc", "n", 400), ("n=1&n=2", "n", 400),
     ("sku=a", "sku", 400), ("category=", "category", 400), ("tenant=other", "tenant", 404)],
)  # fmt: skip
def test_bad_requests_name_the_field(tmp_path: Path, query: str, field: str, status: int) -> None:
    got, body = get(client_for(tmp_path), query)
    assert (got, body["field"]) == (status, field), body


def test_category_needs_a_catalog(tmp_path: Path) -> None:
    client = client_for(tmp_path, catalog=None)
    assert [s for s, _ in ranked(get(client, "")[1])] == ["c", "b", "a", "e"]
    status, body = get(client, "category=X")
    assert (status, body["field"]) == (400, "category")


def test_the_production_server_answers_trending(tmp_path: Path) -> None:
    """The Cloud Run image's server (uvicorn workers, the model memory-mapped from the
    loader process's image) serves the list the snapshot carries."""
    snap = catalog_model()
    snap.trending, snap.trending_scores = np.array([5, 1, 2], np.int32), np.array([3.0, 2.0, 1.0])
    bucket = str(tmp_path / "bucket")
    publish(bucket, snap)
    app = ServedApp(tmp_path, {"SIMREC_DATA_URI": bucket, "SIMREC_MODELS_URI": "",
                               "SIMREC_TENANT": SERVED_TENANT})  # fmt: skip
    try:
        status, _, body = app.get("/trending?n=2&category=bags")
        assert status == 200
        # sku-005 is hats (5 % 3 == 2), sku-001 bags, sku-002 hats.
        assert [(i["sku"], i["score"]) for i in json.loads(body)["items"]] == [("sku-001", 2.0)]
        status, _, body = app.get("/trending?n=x")
        assert status == 400 and json.loads(body)["field"] == "n"
    finally:
        app.stop()
