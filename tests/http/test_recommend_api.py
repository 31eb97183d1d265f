"""The recommend HTTP function through functions-framework's real WSGI app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from functions_framework import create_app

from simrec import publishing
from simrec.config import Settings
from simrec.core.snapshot import ModelSnapshot
from simrec.serving import api
from simrec.serving.api import ServingApp
from tests.clock import FakeClock
from tests.shops import snapshot_from_rows

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "recommend" / "main.py")
TENANT = "shop"
F32_03 = float(np.float32(0.3))  # what a float32 0.3 really is, upcast

#   a -> b 0.75, c 0.375        popularity: a 10, b 8, c 5, d 3, e 12, f 0
#   b -> a 0.75, d 0.5, c 0.25
#   c -> a 0.375, b 0.25
#   d -> b 0.5, f 0.3
#   e, f -> (no neighbors)
SKUS = ["a", "b", "c", "d", "e", "f"]
A, B, C, D, E, F = range(6)
ROWS = {
    A: [(B, 0.75), (C, 0.375)],
    B: [(A, 0.75), (D, 0.5), (C, 0.25)],
    C: [(A, 0.375), (B, 0.25)],
    D: [(B, 0.5), (F, 0.3)],
}
POPULARITY = [10.0, 8.0, 5.0, 3.0, 12.0, 0.0]


def model(version: str, scale: float = 1.0) -> ModelSnapshot:
    metadata = {"version": version, "tenant": TENANT}
    return snapshot_from_rows(SKUS, ROWS, POPULARITY, metadata, scale=scale)


@pytest.fixture
def models_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = str(tmp_path / "models-bucket")
    monkeypatch.setenv("SIMREC_DATA_URI", str(tmp_path / "data-bucket"))
    monkeypatch.setenv("SIMREC_MODELS_URI", root)
    monkeypatch.setenv("SIMREC_TENANT", TENANT)
    monkeypatch.setenv("SIMREC_MODEL_REFRESH_SECONDS", "30")
    api.HOLDERS.clear()
    yield root
    api.HOLDERS.clear()


@pytest.fixture
def clock(models_root: str) -> FakeClock:
    """The function's model holder (background loads), created ahead with a clock the
    test moves."""
    fake = FakeClock()
    function_holder(models_root).clock = fake
    return fake


def function_holder(models_root: str) -> api.ModelHolder:
    return api.HOLDERS.get(models_root, TENANT, 30.0, background=True)


def started(client, models_root: str):
    """The function after its first request (the startup probe's): the model it started
    loading then is loaded."""
    client.get("/healthz")
    function_holder(models_root).wait_for_loader(30)
    return client


@pytest.fixture
def client(models_root: str, clock: FakeClock):
    publishing.write_snapshot(models_root, TENANT, model("v1"))
    return started(create_app(target="recommend", source=SOURCE).test_client(), models_root)


def get(client, path: str, **params):
    response = client.get(path, query_string=params)
    assert response.mimetype == "application/json"
    return response.get_json(), response.status_code


def items(body: dict) -> list[tuple[str, float]]:
    return [(it["sku"], it["score"]) for it in body["items"]]


# --- /recommendations -------------------------------------------------------------------
def test_recommendations_hand_computed(client) -> None:
    body, status = get(client, "/recommendations", browsed="a", purchased="b")
    assert status == 200
    # a: 0.5 (browsed), b: 6 (purchased). c = 0.5*0.375 + 6*0.25, d = 6*0.5;
    # a and b themselves are input items, left out.
    # because: d only via b; c gets 6*0.25 = 1.5 from b and 0.1875 from a.
    assert body == {
        "items": [
            {"sku": "d", "score": 3.0, "because": [{"sku": "b", "share": 1.0}]},
            {
                "sku": "c",
                "score": 0.5 * 0.375 + 6 * 0.25,
                "because": [
                    {"sku": "b", "share": round(1.5 / 1.6875, 4)},
                    {"sku": "a", "share": round(0.1875 / 1.6875, 4)},
                ],
            },
        ],
        "model_version": "v1",
        "fallback": False,
    }
    body, _ = get(client, "/recommendations", browsed="a", purchased="b", exclude_seen="false")
    assert items(body) == [("a", 4.5), ("d", 3.0), ("c", 1.6875), ("b", 0.375)]
    body, _ = get(client, "/recommendations", browsed="a", purchased="b", n="1")
    assert items(body) == [("d", 3.0)]


def test_item_under_several_actions_sums_weights_and_float32_upcast(client) -> None:
    body, _ = get(client, "/recommendations", browsed="a", purchased="a")  # 0.5 + 6
    assert items(body) == [("b", 6.5 * 0.75), ("c", 6.5 * 0.375)]
    body, _ = get(client, "/recommendations", basket="d")
    assert items(body) == [("b", 2 * 0.5), ("f", 2 * F32_03)]


def test_unknown_skus_are_ignored_and_empty_entries_skipped(client) -> None:
    expected, _ = get(client, "/recommendations", browsed="a")
    assert items(expected) == [("b", 0.375), ("c", 0.1875)]
    for browsed in ("zzz,a", " a ,,", ",a,", "a, zzz ,"):
        body, status = get(client, "/recommendations", browsed=browsed)
        assert status == 200 and body == expected
    # A list parameter may be repeated.
    response = client.get("/recommendations?browsed=a&browsed=b&exclude_seen=0")
    assert items(response.get_json())[0] == ("a", 0.5 * 0.75)


def test_fallback_to_popular_items(client) -> None:
    # e has no neighbors: nothing scores -> most popular (f has popularity 0: never).
    body, _ = get(client, "/recommendations", browsed="e", n="3")
    assert body == {
        "items": [
            {"sku": "a", "score": 10.0, "because": []},
            {"sku": "b", "score": 8.0, "because": []},
            {"sku": "c", "score": 5.0, "because": []},
        ],
        "model_version": "v1",
        "fallback": True,
    }
    body, _ = get(client, "/recommendations", browsed="e", n="2", exclude_seen="FALSE")
    assert items(body) == [("e", 12.0), ("a", 10.0)] and body["fallback"] is True
    for params in ({}, {"browsed": "unknown"}, {"browsed": ","}):
        body, status = get(client, "/recommendations", **params)
        assert status == 200 and body["fallback"] is True
        assert items(body) == [("e", 12.0), ("a", 10.0), ("b", 8.0), ("c", 5.0), ("d", 3.0)]


# --- /make_recommendation ---------------------------------------------------------------
def test_make_recommendation_keeps_the_original_contract(client) -> None:
    body, status = get(client, "/make_recommendation", browsed="a", purchased="b")
    assert status == 200
    assert body == {
        "result": [
            {"item": "a", "score": 4.5},
            {"item": "d", "score": 3.0},
            {"item": "c", "score": 1.6875},
            {"item": "b", "score": 0.375},
        ]
    }
    body, _ = get(client, "/make_recommendation", basket="a", n="1")
    assert body == {"result": [{"item": "b", "score": 1.5}]}
    for params in ({"browsed": "e"}, {}, {"browsed": "nope"}):
        assert get(client, "/make_recommendation", **params) == ({"result": []}, 200)
    # Unknown parameters are ignored here (old clients send their own); bad n is not.
    assert get(client, "/make_recommendation", browsed="a", cb="123")[1] == 200
    body, status = get(client, "/make_recommendation", n="0")
    assert status == 400 and body["field"] == "n" and body["result"] == []


# --- /similar ---------------------------------------------------------------------------
def test_similar(client) -> None:
    body, status = get(client, "/similar", sku="b")
    assert status == 200
    assert body == {
        "sku": "b",
        "items": [
            {"sku": "a", "score": 0.75},
            {"sku": "d", "score": 0.5},
            {"sku": "c", "score": 0.25},
        ],
        "model_version": "v1",
    }
    body, _ = get(client, "/similar", sku="d", n="2")
    assert items(body) == [("b", 0.5), ("f", F32_03)]
    assert get(client, "/similar", sku="e")[0]["items"] == []
    body, status = get(client, "/similar", sku="nope")
    assert status == 404 and body["sku"] == "nope" and "'nope'" in body["error"]


# --- validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/recommendations", "browsed=a&n=abc", "n"),
        ("/recommendations", "n=0", "n"),
        ("/recommendations", "n=101", "n"),
        ("/recommendations", "n=-1", "n"),
        ("/recommendations", "n=1.5", "n"),
        ("/recommendations", "n=", "n"),
        ("/recommendations", "n=99999999999999999999999", "n"),
        ("/recommendations", "n=2&n=3", "n"),
        ("/recommendations", "browsed=a&exclude_seen=maybe", "exclude_seen"),
        ("/recommendations", "exclude_seen=", "exclude_seen"),
        ("/recommendations", "purchase=a", "purchase"),
        ("/recommendations", "browsed=a&foo=1", "foo"),
        (
            "/recommendations",
            "browsed=" + ",".join(["x"] * 150) + "&basket=" + ",".join(["y"] * 51),
            "basket",
        ),
        ("/recommendations", "browsed=a&purchased=" + ",".join(["z"] * 200), "purchased"),
        ("/make_recommendation", "browsed=" + ",".join(["x"] * 201), "browsed"),
        ("/make_recommendation", "n=many", "n"),
        ("/similar", "", "sku"),
        ("/similar", "sku=", "sku"),
        ("/similar", "sku=%20", "sku"),
        ("/similar", "sku=a&sku=b", "sku"),
        ("/similar", "sku=a&n=0", "n"),
        ("/similar", "sku=a&browsed=b", "browsed"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(client, path, query, field) -> None:
    response = client.get(f"{path}?{query}")
    body = response.get_json()
    assert response.status_code == 400, body
    assert body["field"] == field and body["error"]


def test_limits_are_inclusive(client) -> None:
    assert get(client, "/recommendations", n="100")[1] == 200
    assert get(client, "/recommendations", n="1")[1] == 200
    body, status = get(client, "/recommendations", browsed=",".join(["a"] * 200))
    assert status == 200 and items(body)[0] == ("b", 100 * 0.75)  # 200 x 0.5, summed


def test_unknown_path_and_method(client) -> None:
    body, status = get(client, "/recommend")
    assert status == 404 and "/recommendations" in body["error"]
    assert get(client, "/")[1] == 404
    response = client.post("/recommendations", data={"browsed": "a"})
    assert response.status_code == 405 and response.get_json()["error"]
    assert "GET" in response.headers["Allow"]
    head = client.head("/recommendations?browsed=a")
    assert head.status_code == 200 and head.data == b""
    assert get(client, "/healthz/")[1] == 200  # a trailing slash is the same endpoint


# --- model lifecycle --------------------------------------------------------------------
def test_healthz_and_503_before_the_first_model(models_root: str, clock: FakeClock) -> None:
    client = create_app(target="recommend", source=SOURCE).test_client()
    body, status = get(client, "/healthz")
    assert status == 503 and body["status"] == "unavailable" and body["error"]
    for path, params in (
        ("/recommendations", {"browsed": "a"}),
        ("/similar", {"sku": "a"}),
    ):
        body, status = get(client, path, **params)
        assert status == 503 and "no model" in body["error"]
    body, status = get(client, "/make_recommendation", browsed="a")
    assert status == 503 and body["result"] == [] and body["error"]
    # Bad parameters are still 400, not 503.
    assert get(client, "/recommendations", n="0")[1] == 400

    publishing.write_snapshot(models_root, TENANT, model("v1"))
    clock.now += 1  # the holder retries a missing model every second, in its loader
    get(client, "/healthz")
    function_holder(models_root).wait_for_loader(30)
    assert get(client, "/healthz") == ({"status": "ok", "model_version": "v1", "items": 6}, 200)


def test_model_swap_without_restart(client, models_root: str, clock: FakeClock) -> None:
    body, _ = get(client, "/recommendations", browsed="a")
    assert body["model_version"] == "v1" and items(body)[0] == ("b", 0.375)

    publishing.write_snapshot(models_root, TENANT, model("v2", scale=0.5))
    clock.now += 29
    assert get(client, "/recommendations", browsed="a")[0]["model_version"] == "v1"
    clock.now += 1  # SIMREC_MODEL_REFRESH_SECONDS=30
    # The request that finds the check due is answered by v1 at once: v2 loads aside.
    assert get(client, "/recommendations", browsed="a")[0]["model_version"] == "v1"
    function_holder(models_root).wait_for_loader(30)
    body, _ = get(client, "/recommendations", browsed="a")
    assert body["model_version"] == "v2" and items(body) == [("b", 0.1875), ("c", 0.09375)]
    assert get(client, "/healthz")[0]["model_version"] == "v2"
    assert get(client, "/similar", sku="b")[0]["items"][0] == {"sku": "a", "score": 0.375}


def test_settings_drive_the_endpoint(models_root: str, clock, monkeypatch) -> None:
    monkeypatch.setenv("SIMREC_MAX_N", "2")
    monkeypatch.setenv("SIMREC_MAX_SKUS_PER_REQUEST", "1")
    monkeypatch.setenv("SIMREC_WEIGHT_BROWSED", "4")
    publishing.write_snapshot(models_root, TENANT, model("v1"))
    client = started(create_app(target="recommend", source=SOURCE).test_client(), models_root)
    assert get(client, "/recommendations", browsed="a", n="3")[0]["field"] == "n"
    assert get(client, "/recommendations", browsed="a,b")[0]["field"] == "browsed"
    body, status = get(client, "/recommendations", browsed="a")
    assert status == 200 and items(body) == [("b", 4 * 0.75), ("c", 4 * 0.375)]


def test_serving_app_takes_plain_dicts(models_root: str, clock) -> None:
    """How the CLI calls it: a dict of strings, no HTTP."""
    publishing.write_snapshot(models_root, TENANT, model("v1"))
    service = ServingApp(Settings())
    body, status = service.recommendations({"browsed": "a", "n": "1"})
    assert status == 200 and items(body) == [("b", 0.375)]
    assert service.similar({"sku": "a", "n": "1"})[0]["items"] == [{"sku": "b", "score": 0.75}]
    assert service.recommendations({"n": "x"}) == (
        {"error": "n must be an integer in 1..100, got 'x'", "field": "n"},
        400,
    )


def test_local_server_wsgi_app_answers_like_the_function(models_root: str, clock) -> None:
    """`simrec serve --server gthread` runs the same ServingApp as a plain WSGI app."""
    from werkzeug.test import Client

    publishing.write_snapshot(models_root, TENANT, model("v1"))
    local = Client(ServingApp(Settings()))
    function = started(create_app(target="recommend", source=SOURCE).test_client(), models_root)
    for url in ("/recommendations?browsed=a&purchased=b", "/similar?sku=zz", "/healthz", "/x"):
        mine, theirs = local.get(url), function.get(url)
        assert mine.status_code == theirs.status_code
        assert mine.mimetype == "application/json" and mine.get_json() == theirs.get_json()
    response = local.delete("/healthz")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_asgi_app_answers_like_the_wsgi_app(models_root: str, clock) -> None:
    """The production server's ASGI adapter sends exactly the WSGI app's status, headers
    and body (HEAD, 405 with Allow, 404, errors included)."""
    import asyncio

    from werkzeug.test import Client

    from simrec.serving.server import AsgiApp

    publishing.write_snapshot(models_root, TENANT, model("v1"))
    service = ServingApp(Settings())
    wsgi, asgi = Client(service), AsgiApp(service)

    def call(method: str, url: str) -> tuple[int, dict[str, str], bytes]:
        path, _, query = url.partition("?")
        scope = {"type": "http", "method": method, "path": path,
                 "query_string": query.encode("latin-1")}  # fmt: skip
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        asyncio.run(asgi(scope, receive, send))
        start, body = sent
        assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]

    urls = ["/recommendations?browsed=a&purchased=b", "/similar?sku=zz", "/healthz", "/x",
            "/recommendations?n=0", "/make_recommendation?browsed=a&n=2"]  # fmt: skip
    for method, url in [("GET", u) for u in urls] + [("HEAD", "/healthz"), ("POST", "/healthz")]:
        status, headers, body = call(method, url)
        expected = wsgi.open(url, method=method)
        assert status == expected.status_code and body == expected.data, url
        assert headers == {k.lower(): v for k, v in expected.headers.items()
                           if k.lower() in ("content-type", "content-length", "allow")}


@pytest.mark.parametrize(
    "query",
    ["browsed=a,b&n=10", "a=&b=1&&c", "browsed=a&browsed=b&n=3&", "x==y&=z", "n=1&n=2",
     "browsed=a%2Cb&n=1", "sku=a+b", "sku=caf%C3%A9"],
)
def test_query_string_fast_path_equals_parse_qsl(query: str) -> None:
    """The plain-ASCII fast path gives exactly parse_qsl's pairs (the slow path's)."""
    from urllib.parse import parse_qsl

    from simrec.serving.parameters import parse_query_string

    expected: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        expected.setdefault(name, []).append(value)
    assert parse_query_string(query, 10_000) == expected
