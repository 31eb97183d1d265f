"""The public mode through the production server over real HTTP (and the Cloud Function
through functions-framework's real app): CORS, per-shop API keys, the per-key rate
limit, and a key rotation picked up by the running process without a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest
from functions_framework import create_app

from simrec.config import Settings
from simrec.serving import access, api
from simrec.serving.api import ServingApp
from tests.http.served_app import TENANT, ServedApp, catalog_model, publish

SHOP = "https://shop.example"
OTHER = "https://evil.example"
KEY_A, KEY_B, KEY_NEW = "key-of-shop-a", "key-of-shop-b", "rotated-key-of-shop-a"
BURST = 3
SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "recommend" / "main.py")
QUERY = "/similar?sku=sku-001&n=3"


def write_keys(path: Path, keys: dict[str, str]) -> None:
    """The keys document as an operator writes it: name -> SHA-256 hex of the key."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({name: access.key_hash(key) for name, key in keys.items()}))
    tmp.replace(path)


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("public")
    bucket, keys = str(tmp / "bucket"), tmp / "keys.json"
    publish(bucket, catalog_model())
    write_keys(keys, {"shop-a": KEY_A, "shop-b": KEY_B})
    env = {
        "SIMREC_DATA_URI": bucket, "SIMREC_MODELS_URI": "", "SIMREC_TENANT": TENANT,
        "SIMREC_ALLOWED_ORIGINS": SHOP, "SIMREC_API_KEYS": str(keys),
        "SIMREC_API_KEYS_REFRESH_SECONDS": "0.3",
        # One token every 20 s: after the burst, the next request of a key is refused.
        "SIMREC_RATE_LIMIT_PER_MINUTE": "3", "SIMREC_RATE_LIMIT_BURST": str(BURST),
    }  # fmt: skip
    app = ServedApp(tmp, env)
    api.HOLDERS.clear()
    local = ServingApp(Settings(data_uri=bucket, tenant=TENANT, model_refresh_seconds=0))
    yield app, local, keys
    app.stop()
    api.HOLDERS.clear()


def error(body: bytes) -> tuple[str, str]:
    doc = orjson.loads(body)
    return doc["field"], doc["error"]


def test_keys_cors_and_rate_limit(public) -> None:
    app, local, _ = public
    expected = local.similar({"sku": "sku-001", "n": "3"})[0]
    # No key, a wrong key: refused with a JSON error naming the field.
    status, headers, body = app.get(QUERY)
    assert status == 401 and headers["content-type"] == "application/json"
    assert error(body)[0] == "key"
    status, _, body = app.get(QUERY, {"X-Api-Key": "not-a-key"})
    assert status == 403 and error(body)[0] == "key"
    # The probes, the document and the page's files need no key; the report does.
    assert app.get("/healthz")[0] == 200 and app.get("/openapi.json")[0] == 200
    assert app.get("/ui")[0] == 200 and app.get("/ui/app.js")[0] == 200
    status, _, body = app.get("/ui/report")
    assert status == 401 and error(body)[0] == "key"
    status, _, body = app.get(f"/ui/report?key={KEY_B}")  # past the gate: none uploaded
    assert status == 404 and error(body) == ("path", "no evaluation report: reports_uri is not set")
    # A good key, as the header or as key=, from the allowed origin: the API's answer,
    # with the CORS header naming that origin.
    status, headers, body = app.get(QUERY, {"X-Api-Key": KEY_A, "Origin": SHOP})
    assert status == 200 and orjson.loads(body) == expected
    assert headers["access-control-allow-origin"] == SHOP and headers["vary"] == "Origin"
    status, headers, body = app.get(QUERY + f"&key={KEY_A}")
    assert status == 200 and orjson.loads(body) == expected
    assert "access-control-allow-origin" not in headers  # no Origin: no CORS header
    # Another origin: refused before the model, even with a good key.
    status, headers, body = app.get(QUERY, {"X-Api-Key": KEY_B, "Origin": OTHER})
    assert status == 403 and error(body)[0] == "origin"
    assert "access-control-allow-origin" not in headers
    # The preflight: allowed for the shop, refused for another origin.
    preflight = {"Origin": SHOP, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "x-api-key"}  # fmt: skip
    status, headers, body = app.get(QUERY, preflight, method="OPTIONS")
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == SHOP
    assert headers["access-control-allow-headers"].lower() == "x-api-key"
    assert "GET" in headers["access-control-allow-methods"]
    status, _, body = app.get(QUERY, {**preflight, "Origin": OTHER}, method="OPTIONS")
    assert status == 403 and error(body)[0] == "origin"
    # shop-a used 2 of its 3 tokens: one more passes, the next is 429 with Retry-After,
    # and shop-b's own bucket is untouched.
    assert app.get(QUERY, {"X-Api-Key": KEY_A})[0] == 200
    status, headers, body = app.get(QUERY, {"X-Api-Key": KEY_A, "Origin": SHOP})
    assert status == 429 and error(body)[0] == "key"
    assert 1 <= int(headers["retry-after"]) <= 20
    assert headers["access-control-allow-origin"] == SHOP  # the page can read the 429
    assert app.get(QUERY, {"X-Api-Key": KEY_B})[0] == 200


def test_rotation_without_restart(public) -> None:
    app, _, keys = public
    pid = app.proc.pid
    write_keys(keys, {"shop-a-2026-12": KEY_NEW, "shop-b": KEY_B})
    deadline = time.monotonic() + 15
    while app.get(QUERY, {"X-Api-Key": KEY_NEW})[0] != 200:
        assert time.monotonic() < deadline, "the rotated key was not picked up"
        time.sleep(0.2)
    assert app.get(QUERY, {"X-Api-Key": KEY_A})[0] == 403  # the old key is gone
    assert app.proc.pid == pid and app.proc.poll() is None
    # A broken document keeps the last good keys.
    keys.write_text("{not json")
    time.sleep(1.0)
    assert app.get(QUERY, {"X-Api-Key": KEY_NEW})[0] == 200


def test_cloud_function_applies_the_same_gate(tmp_path: Path, monkeypatch) -> None:
    bucket, keys = str(tmp_path / "bucket"), tmp_path / "keys.json"
    publish(bucket, catalog_model())
    write_keys(keys, {"shop-a": KEY_A})
    for name, value in {"SIMREC_DATA_URI": bucket, "SIMREC_MODELS_URI": "",
                        "SIMREC_TENANT": TENANT, "SIMREC_ALLOWED_ORIGINS": SHOP,
                        "SIMREC_API_KEYS": str(keys)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    api.HOLDERS.clear()
    client = create_app(target="recommend", source=SOURCE).test_client()
    client.get("/healthz")
    api.HOLDERS.get(bucket, TENANT, 60.0, background=True).wait_for_loader(30)
    response = client.get(QUERY)
    assert response.status_code == 401 and response.get_json()["field"] == "key"
    response = client.get(QUERY, headers={"X-Api-Key": KEY_A, "Origin": SHOP})
    assert response.status_code == 200 and response.get_json()["sku"] == "sku-001"
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    response = client.options(QUERY, headers={"Origin": SHOP,
                                              "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert response.status_code == 204
    page = client.get("/ui")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b"/ui/app.js" in page.data
    api.HOLDERS.clear()
