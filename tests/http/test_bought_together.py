"""``GET /bought-together`` through the real WSGI app, over a model the model builder made
from hand-made neighbor and bought-together rows: scores, because, filters, exclusions,
the fallback (also for a model published before bought-together existed) and the 400s."""

from __future__ import annotations

from pathlib import Path

from werkzeug.test import Client

from simrec.core import model_builder
from simrec.core.snapshot import catalog_table
from tests.http.served_app import get_json, model_client

TENANT = "shop"
ITEMS = [{"sku": s, "users": u, "weight": 1.0} for s, u in
         (("a", 9), ("b", 5), ("c", 7), ("d", 3), ("e", 8))]  # fmt: skip
RELATED = [{"sku": "a", "items": ["e"], "scores": [0.9], "users": [4.0]}]
TOGETHER = [
    {"sku": "a", "items": ["b", "c"], "scores": [0.5, 0.25], "users": [3.0, 2.0]},
    {"sku": "d", "items": ["c", "b"], "scores": [0.5, 0.125], "users": [1.0, 1.0]},
]
CATALOG = {"sku": list("abcde"), "category": ["X", "X", "Y", "Y", "X"],
           "in_stock": [True, False, True, True, True]}  # fmt: skip


def client_for(tmp_path: Path, together: list | None = TOGETHER) -> Client:
    snap = model_builder.build_snapshot(RELATED, ITEMS, {"version": "v1", "tenant": TENANT},
                                        together)  # fmt: skip
    snap.catalog = catalog_table(CATALOG)
    return model_client(tmp_path, TENANT, snap)


def get(client: Client, query: str) -> tuple[int, dict]:
    return get_json(client, "/bought-together", query)


def ranked(body: dict) -> list[tuple[str, float]]:
    return [(item["sku"], item["score"]) for item in body["items"]]


def test_scores_sum_over_the_baskets_items_with_because(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    status, body = get(client, "sku=a")
    assert status == 200 and body["fallback"] is False and body["model_version"] == "v1"
    assert ranked(body) == [("b", 0.5), ("c", 0.25)]  # the bought-together lists, not /similar's
    assert body["items"][0]["because"] == [{"sku": "a", "share": 1.0}]
    assert body["items"][0]["category"] == "X"
    status, body = get(client, "sku=a&sku=d&sku=unknown")
    assert ranked(body) == [("c", 0.75), ("b", 0.625)]  # a and d left out, unknown ignored
    assert body["items"][0]["because"] == [{"sku": "d", "share": 0.6667},
                                           {"sku": "a", "share": 0.3333}]  # fmt: skip


def test_filters_and_exclusions(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert ranked(get(client, "sku=a&sku=d&exclude=c")[1]) == [("b", 0.625)]
    assert ranked(get(client, "sku=a&sku=d&in_stock_only=true")[1]) == [("c", 0.75)]
    assert ranked(get(client, "sku=a&category=X&n=1")[1]) == [("b", 0.5)]
    assert ranked(get(client, "sku=a&same_category=true")[1]) == [("b", 0.5)]
    assert get(client, "sku=a&tenant=shop")[0] == 200


def test_fallback_when_nothing_scores(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    status, body = get(client, "sku=e")  # no bought-together row: popular items
    assert status == 200 and body["fallback"] is True
    assert [s for s, _ in ranked(body)] == ["a", "b", "c", "d"]  # e's category X first
    assert [s for s, _ in ranked(get(client, "sku=nothing&n=2")[1])] == ["a", "e"]


def test_a_model_without_bought_together_answers_the_fallback(tmp_path: Path) -> None:
    client = client_for(tmp_path, together=None)
    status, body = get(client, "sku=a&n=2")
    assert status == 200 and body["fallback"] is True
    assert ranked(body) == [("e", 8.0), ("b", 5.0)]  # a's category X, a itself left out
    assert all(item["because"] == [] for item in body["items"])


def test_bad_requests_name_the_field(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    for query, field in (("", "sku"), ("sku=", "sku"), ("sku=a&n=0", "n"),
                         ("sku=" + "x" * 300, "sku"), ("sku=a&browsed=b", "browsed"),
                         ("sku=a&tenant=other", "tenant")):  # fmt: skip
        status, body = get(client, query)
        assert status in (400, 404) and body["field"] == field, query
