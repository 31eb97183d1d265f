"""The Datastore serving backend against the real Datastore emulator: same answers as the
memory backend, one batched get_multi per request, an LRU cache with a TTL."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.cloud import datastore

from simrec import publishing
from simrec.config import Settings
from simrec.core import model_builder
from simrec.core.tenancy import datastore_namespace
from simrec.jobs import beam_load
from simrec.serving import api
from simrec.serving.api import ServingApp
from simrec.serving.datastore_backend import DatastoreNeighbors, default_client_factory
from tests.clock import FakeClock

pytestmark = pytest.mark.emulator
PROJECT = "simrec-test"
TENANT = "shop"
NEW = [f"new{i}" for i in range(4)]  # catalog-only skus (simrec.core.content)


def build(rng: random.Random, n_items: int, version: str):
    """Neighbor rows as the similarity stage emits them (float64 scores, not float32)."""
    skus = [f"s{i:03d}" for i in range(n_items)]
    rows = []
    for sku in skus:
        others = rng.sample([s for s in skus if s != sku], rng.randint(0, 8))
        rows.append(
            model_builder.neighbor_row(
                {"sku": sku, "neighbors": [
                    {"sku": o, "score": rng.choice([0.3, 0.1, 0.25, rng.random()]), "users": 1}
                    for o in others
                ]}
            )
        )
    items = [{"sku": s, "users": rng.randint(0, 9), "weight": 1.0} for s in skus]
    # warm_users 5: items with 0-4 shoppers are cold (blended rows, simrec.core.content),
    # the others keep their rows as stored: both backends must agree on both kinds.
    meta = {"version": version, "tenant": TENANT, "content": {"warm_users": 5}}
    snapshot = model_builder.build_snapshot(rows, items, meta)
    snapshot.catalog = None
    # The catalog also lists NEW items, in no neighbor list (cold items with no events).
    listed = skus + NEW
    catalog = {
        "sku": listed,
        "category": [f"c{i % 3}" for i in range(len(listed))],
        "in_stock": [i % 4 != 0 for i in range(len(listed))],
        "title": [f"thing {rng.choice(['red', 'blue', 'green'])} {i % 5}"
                  for i in range(len(listed))],
    }  # fmt: skip
    from simrec.core.snapshot import catalog_table

    snapshot.catalog = catalog_table(catalog)
    return rows, snapshot


def put_rows(rows, namespace: str | None, version: str) -> None:
    """The entities exactly as the Beam load pipeline writes them."""
    client = datastore.Client(project=PROJECT, namespace=namespace)
    at = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    entities = [
        beam_load.neighbor_entity(row, PROJECT, namespace, version, at).to_client_entity()
        for row in rows
    ]
    client.put_multi(entities)


@pytest.fixture
def setup(datastore_host: str, tmp_path: Path):
    api.HOLDERS.clear()
    root = str(tmp_path / "models")
    rows, snapshot = build(random.Random(5), 60, "v1")
    publishing.write_snapshot(root, TENANT, snapshot)
    put_rows(rows, datastore_namespace("", TENANT), "v1")
    settings = Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0,
                        datastore_project=PROJECT)
    yield root, settings, snapshot
    api.HOLDERS.clear()


def random_query(rng: random.Random, skus: list[str]) -> dict[str, str]:
    query: dict[str, str] = {"n": str(rng.choice([1, 5, 10, 30]))}
    for name in ("browsed", "basket", "purchased"):
        if rng.random() < 0.6:
            picked = [rng.choice(skus) for _ in range(rng.randint(1, 6))]
            if rng.random() < 0.2:
                picked.append("unknown")
            query[name] = ",".join(picked)
    if rng.random() < 0.2:
        query["exclude_seen"] = "false"
    if rng.random() < 0.2:
        query["exclude"] = rng.choice(skus)
    if rng.random() < 0.2:
        query["in_stock_only"] = "true"
    if rng.random() < 0.2:
        query["category"] = rng.choice(["c0", "c1", "c2"])
    return query


def both_backends(
    settings: Settings, **store: Any
) -> tuple[ServingApp, DatastoreNeighbors, ServingApp]:
    """``(memory app, Datastore store, Datastore app)`` over the same published model."""
    neighbors = DatastoreNeighbors(default_client_factory(PROJECT), **store)
    remote = ServingApp(settings.model_copy(update={"serving_backend": "datastore"}),
                        datastore=neighbors)  # fmt: skip
    return ServingApp(settings), neighbors, remote


def test_same_answers_as_the_memory_backend(setup) -> None:
    root, settings, snapshot = setup
    memory, store, remote = both_backends(settings, cache_items=1000)
    rng = random.Random(9)
    compared = 0
    for _ in range(120):
        query = random_query(rng, snapshot.skus)
        expected = memory.recommendations(query)
        assert remote.recommendations(query) == expected
        compared += bool(expected[0]["items"]) and not expected[0]["fallback"]
        legacy = {k: v for k, v in query.items() if k in ("browsed", "basket", "purchased")}
        assert remote.make_recommendation(legacy) == memory.make_recommendation(legacy)
    for sku in snapshot.skus[:20]:
        assert remote.similar({"sku": sku, "n": "5"}) == memory.similar({"sku": sku, "n": "5"})
    assert compared > 50
    # float32 rounding as in the snapshot: 0.3 in Datastore answers float32(0.3).
    scores = {s for body, _ in [remote.similar({"sku": k}) for k in snapshot.skus]
              for s in (it["score"] for it in body["items"])}
    assert float(np.float32(0.3)) in scores and 0.3 not in scores


def test_one_get_multi_per_request_and_the_cache(setup) -> None:
    root, settings, snapshot = setup
    clock = FakeClock()
    store = DatastoreNeighbors(default_client_factory(PROJECT), cache_items=1000,
                                cache_seconds=60, timer=clock)
    app = ServingApp(settings.model_copy(update={"serving_backend": "datastore"}),
                     datastore=store)
    query = {"browsed": ",".join(snapshot.skus[:10]), "purchased": "s011,unknown"}
    assert app.recommendations(query)[1] == 200
    assert store.round_trips == 1  # 11 known skus, one batched read
    app.recommendations(query)
    assert store.round_trips == 1  # all cached (the missing ones too)
    app.recommendations({"browsed": "s000,s020"})
    assert store.round_trips == 2  # only s020 was fetched
    clock.now += 61  # past the TTL: read again
    app.recommendations(query)
    assert store.round_trips == 3
    app.recommendations({"browsed": "unknown-to-the-model"})
    assert store.round_trips == 3  # unknown skus never reach Datastore


def test_catalog_only_skus_are_answered_as_in_memory(setup) -> None:
    """A catalog-only input sku (a new item) gets its attribute neighbors from the same
    rule with either backend; a query mixing it with model items reads their lists from
    Datastore in one round trip."""
    root, settings, snapshot = setup
    memory, store, remote = both_backends(settings, cache_items=0)  # every read counted
    rng = random.Random(4)
    for sku in NEW:
        body, status = memory.similar({"sku": sku, "n": "5"})
        assert status == 200 and {it["reason"] for it in body["items"]} == {"attributes"}
        assert remote.similar({"sku": sku, "n": "5"}) == (body, status)
        query = {"browsed": sku, "n": "10"}
        body, status = memory.recommendations(query)
        assert status == 200 and body["items"] and not body["fallback"]
        assert remote.recommendations(query) == (body, status)
        mixed = {"browsed": f"{sku},{rng.choice(snapshot.skus)}",
                 "purchased": rng.choice(snapshot.skus), "n": "10"}  # fmt: skip
        before = store.round_trips
        assert remote.recommendations(mixed) == memory.recommendations(mixed)
        assert store.round_trips == before + 1


def test_tenant_namespace_and_outage(setup, tmp_path: Path) -> None:
    root, settings, _ = setup
    rows, snap2 = build(random.Random(6), 30, "t2")
    publishing.write_snapshot(root, "shop2", snap2)
    put_rows(rows, datastore_namespace("", "shop2"), "t2")
    ds_settings = settings.model_copy(
        update={"serving_backend": "datastore", "serving_tenants": "shop2"}
    )
    remote = ServingApp(ds_settings)
    memory = ServingApp(settings.model_copy(update={"serving_tenants": "shop2"}))
    query = {"browsed": "s001,s002", "tenant": "shop2"}
    body, status = remote.recommendations(query)
    assert status == 200 and body["model_version"] == "t2" and not body["fallback"]
    assert (body, status) == memory.recommendations(query)

    class Down:
        def key(self, *args):
            return datastore.Key(*args, project=PROJECT)

        def get_multi(self, keys):
            raise ConnectionError("emulator gone")

    broken = ServingApp(ds_settings, datastore=DatastoreNeighbors(lambda ns: Down()))
    body, status = broken.recommendations({"browsed": "s001"})
    assert status == 503 and "retry" in body["error"]
    body, status = broken.similar({"sku": "s001"})
    assert status == 503


def test_datastore_backend_needs_a_project(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DATASTORE_PROJECT"):
        ServingApp(Settings(models_uri=str(tmp_path), serving_backend="datastore"))


def test_two_tenants_loaded_by_beam_are_served_separately(
    datastore_host: str, tmp_path: Path
) -> None:
    """End to end: the Beam load writes two tenants (same skus, other lists) with the
    default namespace setting; serving reads each tenant's own lists by the same rule."""
    from tests.builders import random_neighbors, write_similarities
    from tests.cloud.test_datastore_load import _entities

    api.HOLDERS.clear()
    bucket, models = tmp_path / "bucket", str(tmp_path / "bucket")
    lists = {}
    for tenant, seed in (("shopA", 11), ("shopB", 12)):
        neighbors, items = random_neighbors(seed=seed, n_items=40)
        uri = write_similarities(bucket, neighbors, items, tenant=tenant)
        beam_load.run(["--similarities", uri, "--models_root", models,
                           "--datastore_project", PROJECT])  # fmt: skip
        lists[tenant] = neighbors
    for tenant in lists:  # each tenant's entities in its own namespace, none elsewhere
        assert sorted(_entities(datastore_namespace("", tenant))) == sorted(lists[tenant])
    assert _entities(None) == {}

    settings = Settings(models_uri=models, tenant="shopA", serving_tenants="shopB",
                        model_refresh_seconds=0, datastore_project=PROJECT)  # fmt: skip
    remote = ServingApp(settings.model_copy(update={"serving_backend": "datastore"}))
    memory = ServingApp(settings)
    shared = sorted(set(lists["shopA"]) & set(lists["shopB"]))
    differ = 0
    for sku in shared:
        answers = {}
        for tenant in lists:
            query = {"sku": sku, "n": "10", "tenant": tenant}
            body, status = remote.similar(query)
            assert status == 200 and (body, status) == memory.similar(query)
            assert [it["sku"] for it in body["items"]] == [n for n, _, _ in lists[tenant][sku]]
            answers[tenant] = body["items"]
        differ += answers["shopA"] != answers["shopB"]
    assert shared and differ > len(shared) // 2  # the tenants really have other lists
