"""Filters on the current item (Amazon Personalize's ``CurrentItem.<attribute>``):
``same_category`` and ``price_within=F``, through the real WSGI app on a hand-built
catalog, with their 400s naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.test import Client

from simrec import publishing
from simrec.config import Settings
from simrec.core.snapshot import ModelSnapshot
from simrec.serving import api
from simrec.serving.api import ServingApp
from tests.shops import snapshot_from_rows

TENANT = "shop"
SKUS = ["a", "b", "c", "d", "e", "f", "g", "h"]
#  a -> b .9, c .8, d .7, e .6, f .5, g .4, h .3      catalog (category, price):
#  e -> c .5, h .4, a .3                               a X 10, b X 12, c Y 11, d X 30,
#  popularity: a 5, b 4, c 3, d 8, e 2, f 1, g 6, h 7  e Y 5, g X (no price), h Z 9,
#                                                      f not listed
ROWS = {0: [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (5, 0.5), (6, 0.4), (7, 0.3)],
        4: [(2, 0.5), (7, 0.4), (0, 0.3)]}  # fmt: skip
CATALOG = {
    "sku": ["a", "b", "c", "d", "e", "g", "h"],
    "category": ["X", "X", "Y", "X", "Y", "X", "Z"],
    "in_stock": [True] * 7,
    "price": [10.0, 12.0, 11.0, 30.0, 5.0, None, 9.0],
}


def snapshot(catalog: dict | None) -> ModelSnapshot:
    # warm_users 0: the rows above as served (cold-item blend: tests/unit/test_content.py)
    metadata = {"version": "v1", "tenant": TENANT, "content": {"warm_users": 0}}
    popularity = [5.0, 4.0, 3.0, 8.0, 2.0, 1.0, 6.0, 7.0]
    return snapshot_from_rows(SKUS, ROWS, popularity, metadata, catalog=catalog)


def client_for(tmp_path: Path, catalog: dict | None = CATALOG) -> Client:
    api.HOLDERS.clear()
    root = str(tmp_path / "models")
    publishing.write_snapshot(root, TENANT, snapshot(catalog))
    return Client(ServingApp(Settings(models_uri=root, tenant=TENANT)))


@pytest.fixture
def client(tmp_path: Path):
    yield client_for(tmp_path)
    api.HOLDERS.clear()


def get(client: Client, path: str, query: str) -> tuple[dict, int]:
    response = client.get(f"{path}?{query}")
    return response.get_json(), response.status_code


def skus(body: dict) -> list[str]:
    return [item["sku"] for item in body["items"]]


def test_similar_same_category_and_price_within(client: Client) -> None:
    assert skus(get(client, "/similar", "sku=a")[0]) == ["b", "c", "d", "e", "f", "g", "h"]
    body, status = get(client, "/similar", "sku=a&same_category=true")
    assert status == 200 and skus(body) == ["b", "d", "g"]  # category X, as a
    # a costs 10: 1.5 lets 6.67..15 through; g has no price, f is not in the catalog.
    assert skus(get(client, "/similar", "sku=a&price_within=1.5")[0]) == ["b", "c", "h"]
    # 12 = 10 * 1.2: the bounds are inclusive.
    assert skus(get(client, "/similar", "sku=a&price_within=1.2")[0]) == ["b", "c", "h"]
    assert skus(get(client, "/similar", "sku=a&price_within=1.15")[0]) == ["c", "h"]
    assert skus(get(client, "/similar", "sku=a&price_within=1")[0]) == []  # no other costs 10
    both = get(client, "/similar", "sku=a&same_category=yes&price_within=1.5")[0]
    assert skus(both) == ["b"]
    assert skus(get(client, "/similar", "sku=a&same_category=false")[0]) == skus(
        get(client, "/similar", "sku=a")[0]
    )


def test_recommendations_take_any_current_item(client: Client) -> None:
    # a (X, 10) and e (Y, 5): candidates b c d f g h (inputs excluded).
    body, _ = get(client, "/recommendations", "browsed=a,e")
    assert set(skus(body)) == {"b", "c", "d", "f", "g", "h"}
    body, _ = get(client, "/recommendations", "browsed=a,e&same_category=true")
    assert set(skus(body)) == {"b", "c", "d", "g"} and not body["fallback"]
    # 1.2: 8.33..12 around a, 4.17..6 around e: b 12, c 11, h 9.
    body, _ = get(client, "/recommendations", "browsed=a,e&price_within=1.2")
    unfiltered = skus(get(client, "/recommendations", "browsed=a,e")[0])
    assert skus(body) == [s for s in unfiltered if s in ("b", "c", "h")]  # same ranking
    body, _ = get(client, "/recommendations", "browsed=a,e&price_within=1.2&category=Y")
    assert skus(body) == ["c"]


def test_the_fallback_keeps_the_current_item_filters(client: Client) -> None:
    # g (X) has no neighbors: popular items of X only (d 8, a 5, b 4), g itself excluded.
    body, _ = get(client, "/recommendations", "browsed=g&same_category=true")
    assert body["fallback"] and skus(body) == ["d", "a", "b"]
    # No known current item: nothing has its category, so nothing (not any popular item).
    body, status = get(client, "/recommendations", "browsed=unknown&same_category=true")
    assert status == 200 and body["fallback"] and body["items"] == []
    # h costs 9; nothing of h scores within 1.1 (8.18..9.9) but a (10) is not in it either.
    body, _ = get(client, "/recommendations", "browsed=h&price_within=1.12")
    assert body["fallback"] and skus(body) == ["a"]  # 10 <= 9 * 1.12


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("price_within=0.5", "price_within"),
        ("price_within=abc", "price_within"),
        ("price_within=nan", "price_within"),
        ("price_within=inf", "price_within"),
        ("price_within=1e999", "price_within"),
        ("price_within=", "price_within"),
        ("price_within=-2", "price_within"),
        ("price_within=1_5", "price_within"),
        ("price_within=2&price_within=3", "price_within"),
        ("same_category=maybe", "same_category"),
        ("same_category=true&same_category=true", "same_category"),
    ],
)
def test_bad_values_are_400_naming_the_field(client: Client, query: str, field: str) -> None:
    for path, item in (("/recommendations", "browsed=a"), ("/similar", "sku=a")):
        body, status = get(client, path, f"{item}&{query}")
        assert status == 400 and body["field"] == field and body["error"], (path, body)


def test_the_filters_need_a_catalog_and_a_price(tmp_path: Path) -> None:
    bare = client_for(tmp_path)
    assert get(bare, "/similar", "sku=a&price_within=2.5")[1] == 200
    bare = client_for(tmp_path / "none", catalog=None)
    for query, field in (("same_category=true", "same_category"),
                         ("price_within=2", "price_within")):  # fmt: skip
        body, status = get(bare, "/recommendations", f"browsed=a&{query}")
        assert status == 400 and body["field"] == field and "catalog" in body["error"]
    no_price = {k: v for k, v in CATALOG.items() if k != "price"}
    priceless = client_for(tmp_path / "priceless", catalog=no_price)
    assert get(priceless, "/similar", "sku=a&same_category=1")[1] == 200
    body, status = get(priceless, "/similar", "sku=a&price_within=2")
    assert status == 400 and body["field"] == "price_within" and "price" in body["error"]
    text_price = {**no_price, "price": ["cheap"] * 7}  # an attribute, not a number
    body, status = get(client_for(tmp_path / "text", catalog=text_price), "/similar",
                       "sku=a&price_within=2")  # fmt: skip
    assert status == 400 and body["field"] == "price_within"
    api.HOLDERS.clear()
