"""``/items``, ``/runs/latest`` and the ``/ui`` pages through the gate's WSGI app (what
gunicorn's gthread worker runs), against hand-computed answers over a model with a
catalog: prefix search order and counts, the run's manifests from the bucket, the
summary and report from ``reports_uri``, and JSON refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from werkzeug.test import Client

from simrec import publishing, storage
from simrec.config import Settings
from simrec.core import layout
from simrec.serving import api, ui
from simrec.serving.access import Gate
from simrec.serving.api import ServingApp
from simrec.serving.ui import endpoints
from tests.http.served_app import TENANT, VERSION, catalog_model, publish


@pytest.fixture
def setup(tmp_path: Path):
    bucket, reports = str(tmp_path / "bucket"), tmp_path / "reports"
    model = catalog_model()
    publish(bucket, model)
    api.HOLDERS.clear()
    settings = Settings(data_uri=bucket, tenant=TENANT, model_refresh_seconds=0,
                        reports_uri=str(reports))  # fmt: skip
    service = ServingApp(settings)
    yield Client(Gate(service)), model, bucket, reports
    api.HOLDERS.clear()


def get(client: Client, target: str) -> tuple[int, dict]:
    response = client.get(target)
    assert response.mimetype == "application/json", (target, response.mimetype)
    return response.status_code, response.get_json()


def test_items_prefix_search(setup) -> None:
    client, model, _, _ = setup
    pop = model.popularity
    status, body = get(client, "/items?q=SKU-00&n=4")  # case-insensitive
    prefixed = [i for i, s in enumerate(model.skus) if s.startswith("sku-00")]
    want = sorted(prefixed, key=lambda i: (-pop[i], i))[:4]
    assert status == 200 and body["matches"] == 10 and body["model_version"] == VERSION
    assert [it["sku"] for it in body["items"]] == [model.skus[i] for i in want]
    first = body["items"][0]
    assert first["popularity"] == pop[want[0]]
    assert first["attributes"]["title"] == f"Item number {want[0]}"
    assert first["category"] == ("shoes", "bags", "hats")[want[0] % 3]
    # No q: the most popular items; a prefix nothing has: none.
    _, body = get(client, "/items?n=3")
    assert [it["sku"] for it in body["items"]] == [
        model.skus[i] for i in sorted(range(40), key=lambda i: -pop[i])[:3]
    ]
    assert body["matches"] == 40
    assert get(client, "/items?q=zzz")[1]["items"] == []
    # Parameters follow the API's rules.
    assert get(client, "/items?query=a") == (400, {"error": "unknown parameter 'query'; "
                                                   "expected one of q, n, tenant",
                                                   "field": "query"})  # fmt: skip
    assert get(client, "/items?q=" + "a" * 300)[1]["field"] == "q"
    assert get(client, "/items?n=0")[1]["field"] == "n"


def test_items_walk_gives_the_sorted_answer(setup, monkeypatch) -> None:
    client, _, _, _ = setup
    sorted_answer = get(client, "/items?q=sku-0&n=7")[1]
    monkeypatch.setattr(endpoints, "SORT_LIMIT", 0)  # the popularity-order walk instead
    assert get(client, "/items?q=sku-0&n=7")[1] == sorted_answer


def test_runs_latest_with_and_without_the_run_files(setup) -> None:
    client, _, bucket, reports = setup
    status, body = get(client, "/runs/latest")
    assert status == 200
    assert body == {"tenant": TENANT, "model_version": VERSION,
                    "model": publishing.version_metadata(bucket, TENANT, VERSION),
                    "export": None,
                    "similarities": None, "summary": None, "report": None}  # fmt: skip
    assert get(client, "/ui/report")[0] == 404
    # The run's manifests in the bucket, and the work folder's summary and report.
    storage.write_json(layout.export_manifest(bucket, TENANT, VERSION), {"counts": {"read": 9}})
    storage.write_json(layout.similarities_manifest(bucket, TENANT, VERSION),
                       {"engine": "spark", "counts": {"pairs": 3}})  # fmt: skip
    (reports / "evaluation").mkdir(parents=True)
    (reports / "summary.json").write_text(json.dumps({"run_id": VERSION}))
    (reports / "evaluation" / "report.html").write_text("<html><title>r</title></html>")
    api.HOLDERS.clear()
    endpoints._manifests._data.clear()
    _, body = get(client, "/runs/latest")
    assert body["export"] == {"counts": {"read": 9}}
    assert body["similarities"] == {"engine": "spark", "counts": {"pairs": 3}}
    assert body["summary"] == {"run_id": VERSION} and body["report"] == ui.REPORT_PATH
    page = client.get("/ui/report")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.data == b"<html><title>r</title></html>"
    assert page.headers["Content-Security-Policy"] == ui.REPORT_CSP


def test_pages(setup) -> None:
    client, _, _, _ = setup
    pages = [("/ui", "text/html"), ("/ui/", "text/html"),
             ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")]  # fmt: skip
    for path, kind in pages:
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == kind, path
        assert response.headers["Content-Security-Policy"] == ui.CSP
        assert response.data == ui.static_file(ui.FILES[path.rstrip("/")][0])
    head = client.head("/ui")
    assert head.status_code == 200 and head.data == b""
    assert get(client, "/ui/nothing")[0] == 404
    post = client.post("/ui")
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
    # The page's script calls only endpoints the document describes (or feature-detects).
    script = ui.static_file("app.js").decode()
    doc = get(client, "/openapi.json")[1]
    for path in ("/items", "/similar", "/recommendations", "/runs/latest", "/openapi.json"):
        assert f'"{path}"' in script and path in doc["paths"], path
    for later in ("/bought-together", "/trending"):
        assert f'state.paths.has("{later}")' in script
