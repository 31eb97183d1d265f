"""Serving features through the real WSGI app: because, exclude, the item catalog and its
filters, the category-first fallback, tenants, limits and the OpenAPI document."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from werkzeug.test import Client

from simrec import publishing, storage
from simrec.config import Settings
from simrec.core.snapshot import CATALOG_NAME, ModelSnapshot
from simrec.serving import api
from simrec.serving.api import ServingApp
from simrec.serving.parameters import MAX_SKU_LENGTH, RECOMMEND_PARAMS, max_query_bytes
from simrec.storage import snapshots
from tests.shops import CATALOG, catalog_shop

TENANT = "shop"


def model(version: str, tenant: str = TENANT, catalog: dict | None = CATALOG) -> ModelSnapshot:
    # warm_users 0: the co-occurrence rows are served as they are (no cold-item blend,
    # tests/unit/test_content.py has that); catalog-only skus still get content.
    metadata = {"version": version, "tenant": tenant, "content": {"warm_users": 0}}
    return catalog_shop(metadata, catalog)


@pytest.fixture
def root(tmp_path: Path) -> str:
    api.HOLDERS.clear()
    root = str(tmp_path / "models")
    publishing.write_snapshot(root, TENANT, model("v1"))
    yield root
    api.HOLDERS.clear()


def make_client(root: str, **settings) -> Client:
    values = {"models_uri": root, "tenant": TENANT, "model_refresh_seconds": 0, **settings}
    return Client(ServingApp(Settings(**values)))


@pytest.fixture
def client(root: str) -> Client:
    return make_client(root)


def get(client: Client, path: str, **params):
    response = client.get(path, query_string=params)
    assert response.mimetype == "application/json"
    return response.get_json(), response.status_code


def skus(body: dict) -> list[str]:
    return [it["sku"] for it in body["items"]]


def test_catalog_is_an_optional_part_of_the_snapshot(root: str, tmp_path: Path) -> None:
    snap = snapshots.read_snapshot(root, TENANT, "v1")
    assert snap.catalog is not None and snap.catalog.column_names == list(CATALOG)
    assert snap.catalog["sku"].to_pylist() == CATALOG["sku"]
    files = model("v1").to_files()
    assert list(files)[-1] == "metadata.json" and CATALOG_NAME in files
    assert CATALOG_NAME not in model("v1", catalog=None).to_files()
    other = str(tmp_path / "no-catalog")
    publishing.write_snapshot(other, TENANT, model("v0", catalog=None))
    assert snapshots.read_snapshot(other, TENANT, "v0").catalog is None
    with pytest.raises(ValueError, match="lacks column"):
        model("x", catalog={"sku": ["a"], "category": ["X"]})
    with pytest.raises(ValueError, match="unique"):
        model("x", catalog={"sku": ["a", "a"], "category": ["X", "X"], "in_stock": [1, 0]})


def test_because_names_the_contributing_inputs_with_shares(client: Client) -> None:
    body, status = get(client, "/recommendations", browsed="a", purchased="b")
    assert status == 200 and body["fallback"] is False
    by_sku = {it["sku"]: it for it in body["items"]}
    assert by_sku["d"]["because"] == [{"sku": "b", "share": 1.0}]
    # c = a 0.5*0.375 (0.1875) + b 6*0.25 (1.5) = 1.6875
    assert by_sku["c"]["because"] == [
        {"sku": "b", "share": round(1.5 / 1.6875, 4)},
        {"sku": "a", "share": round(0.1875 / 1.6875, 4)},
    ]
    # Catalog fields ride along: category, stock and the attribute columns.
    assert by_sku["c"]["category"] == "Y" and by_sku["c"]["in_stock"] is True
    assert by_sku["c"]["attributes"] == {"price": 5.5}


def test_exclude(client: Client) -> None:
    body, _ = get(client, "/recommendations", browsed="a", purchased="b", exclude="d, nope")
    assert skus(body) == ["c"]
    # a = b 0.5*0.75, c = a 0.5*0.375 + b 0.5*0.25, d = b 0.5*0.5; b itself excluded.
    body, _ = get(client, "/recommendations", browsed="a,b", exclude_seen="false", exclude="b")
    assert skus(body) == ["a", "c", "d"]
    body, _ = get(client, "/similar", sku="b", exclude="d,c")
    assert skus(body) == ["a"]
    body, status = get(client, "/recommendations", browsed="a", exclude=",".join(["x"] * 201))
    assert status == 400 and body["field"] == "exclude"


def test_in_stock_and_category_filters(client: Client) -> None:
    body, _ = get(client, "/recommendations", browsed="a", category="Y")
    assert skus(body) == ["c"] and body["fallback"] is False
    body, _ = get(client, "/recommendations", browsed="a", in_stock_only="true")
    assert skus(body) == ["c"]  # b is out of stock
    body, _ = get(client, "/similar", sku="b", category="Y")
    assert skus(body) == ["d", "c"]
    body, _ = get(client, "/similar", sku="d", in_stock_only="yes")
    assert skus(body) == []  # b out of stock, f not in the catalog
    body, status = get(client, "/recommendations", browsed="a", category="nope")
    assert status == 200 and body["items"] == [] and body["fallback"] is True


def test_fallback_prefers_the_input_items_categories(client: Client) -> None:
    # e (category X) has no neighbors: popular X items first (a 10, b 8), then the
    # most popular overall (c 9, d 3), although c is more popular than b.
    body, _ = get(client, "/recommendations", browsed="e", n="4")
    assert body["fallback"] is True
    assert [(it["sku"], it["score"]) for it in body["items"]] == [
        ("a", 10.0), ("b", 8.0), ("c", 9.0), ("d", 3.0)
    ]
    assert all(it["because"] == [] for it in body["items"])
    # Filters apply to the fallback too: d's only neighbors (b, f) are out of stock.
    body, _ = get(client, "/recommendations", basket="d", in_stock_only="1", n="3")
    assert body["fallback"] is True and skus(body) == ["c", "e", "a"]
    body, _ = get(client, "/recommendations", browsed="nope", category="Y")
    assert skus(body) == ["c", "d"]  # the category filter's popular items
    body, _ = get(client, "/recommendations", n="2")
    assert skus(body) == ["e", "a"]  # no input: global popularity


def test_filters_need_a_catalog(tmp_path: Path) -> None:
    api.HOLDERS.clear()
    root = str(tmp_path / "plain")
    publishing.write_snapshot(root, TENANT, model("p1", catalog=None))
    client = make_client(root)
    body, status = get(client, "/recommendations", browsed="a", in_stock_only="true")
    assert status == 400 and body["field"] == "in_stock_only" and "catalog" in body["error"]
    body, status = get(client, "/similar", sku="a", category="X")
    assert status == 400 and body["field"] == "category"
    body, status = get(client, "/recommendations", browsed="a")
    assert status == 200 and "category" not in body["items"][0]
    api.HOLDERS.clear()


def test_tenants_select_their_model(root: str) -> None:
    publishing.write_snapshot(root, "shop2", model("s2-v1", tenant="shop2", catalog=None))
    client = make_client(root, serving_tenants="shop2")
    assert get(client, "/healthz")[0]["model_version"] == "v1"
    body, status = get(client, "/recommendations", browsed="a", tenant="shop2")
    assert status == 200 and body["model_version"] == "s2-v1"
    assert get(client, "/healthz", tenant="shop2")[0]["model_version"] == "s2-v1"
    assert get(client, "/similar", sku="a", tenant="shop2")[0]["model_version"] == "s2-v1"
    body, status = get(client, "/recommendations", browsed="a", tenant="shop3")
    assert status == 404 and body["field"] == "tenant"
    # Without serving_tenants only the default tenant is served.
    assert get(make_client(root), "/healthz", tenant="shop2")[1] == 404
    # A listed tenant without a model yet: 503, like a cold start.
    body, status = get(make_client(root, serving_tenants="shop4"), "/healthz", tenant="shop4")
    assert status == 503


def test_any_tenant_made_up_names_are_404_and_use_up_nothing(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serving_tenants='*': a made-up tenant is a 404 (not a 503), allocates no holder,
    and however many there are, a real tenant is still served."""
    publishing.write_snapshot(root, "shop2", model("s2-v1", tenant="shop2", catalog=None))
    app = ServingApp(Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0,
                              serving_tenants="*"))  # fmt: skip
    client = Client(app)
    for k in range(api.HOLDERS.max_unpinned * 2):
        body, status = get(client, "/recommendations", browsed="a", tenant=f"made-up-{k}")
        assert status == 404 and body["field"] == "tenant", body
        assert get(client, "/healthz", tenant=f"made-up-{k}")[1] == 404
    assert api.HOLDERS.tenants(root, pinned=False) == []
    assert set(api.HOLDERS.tenants(root, pinned=True)) <= {TENANT}
    body, status = get(client, "/recommendations", browsed="a", tenant="shop2")
    assert status == 200 and body["model_version"] == "s2-v1"
    assert get(client, "/healthz")[0]["model_version"] == "v1"  # the default tenant


def test_any_tenant_holders_are_a_bounded_lru(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.HOLDERS, "max_unpinned", 2)
    shops = [f"shop{k}" for k in range(4)]
    for shop in shops:
        publishing.write_snapshot(root, shop, model(f"{shop}-v1", tenant=shop, catalog=None))
    app = ServingApp(Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0,
                              serving_tenants="*"))  # fmt: skip
    client = Client(app)
    for shop in [*shops, *shops]:  # more tenants than holders: each still answers
        body, status = get(client, "/healthz", tenant=shop)
        assert status == 200 and body["model_version"] == f"{shop}-v1"
        assert len(api.HOLDERS.tenants(root, pinned=False)) <= 2
    get(client, "/healthz", tenant="shop2")  # used last: kept, shop3 dropped next
    get(client, "/healthz", tenant="shop0")
    assert api.HOLDERS.tenants(root, pinned=False) == ["shop2", "shop0"]


@pytest.mark.parametrize(
    "tenant", ["..", ".", "../default", "a/b", "_x", "__ns__", "a" * 64, "sh op", "%2e%2e", ""]
)
def test_bad_tenant_names_never_reach_storage(
    root: str, monkeypatch: pytest.MonkeyPatch, tenant: str
) -> None:
    touched: list[str] = []
    real = storage.filesystem
    monkeypatch.setattr(api.storage, "filesystem", lambda uri: touched.append(uri) or real(uri))
    app = ServingApp(Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0,
                              serving_tenants="*"))  # fmt: skip
    body, status = get(Client(app), "/healthz", tenant=tenant)
    assert status == 404 and body["field"] == "tenant"
    assert touched == [] and not api.HOLDERS.tenants(root, pinned=False)  # no listing, no holder
    with pytest.raises(ValueError, match=r"tenant .*(not a valid name|longer than)"):
        ServingApp(Settings(models_uri=root, tenant=TENANT, serving_tenants=tenant or "."))


def test_any_tenant_requests_never_wait_on_storage_in_a_server(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a server (background loads) the tenants are listed at start and re-listed by a
    thread; a request only looks the name up, and a new tenant's model loads aside."""
    publishing.write_snapshot(root, "shop2", model("s2-v1", tenant="shop2", catalog=None))
    app = ServingApp(Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=60,
                              serving_tenants="*"), background_load=True)  # fmt: skip
    app.start()
    on_request_path: list[str] = []
    real = storage.filesystem

    def recorded(uri: str):
        if threading.current_thread() is threading.main_thread():
            on_request_path.append(uri)
        return real(uri)

    monkeypatch.setattr(api.storage, "filesystem", recorded)
    client = Client(app)
    for k in range(20):
        assert get(client, "/healthz", tenant=f"made-up-{k}")[1] == 404
    body, status = get(client, "/healthz", tenant="shop2")  # allocated now, loading aside
    assert status in (200, 503)
    api.HOLDERS.find(root, "shop2", 60, background=True).wait_for_loader(30)
    assert get(client, "/healthz", tenant="shop2")[0]["model_version"] == "s2-v1"
    assert on_request_path == [] and api.HOLDERS.tenants(root, pinned=False) == ["shop2"]


def test_a_configured_tenant_without_a_model_is_503(root: str) -> None:
    """A listed tenant whose model is not loaded (yet): 503, unlike an unknown one."""
    body, status = get(make_client(root, serving_tenants="shop9"), "/healthz", tenant="shop9")
    assert status == 503 and body["status"] == "unavailable"


def test_datastore_namespace_per_tenant(root: str) -> None:
    def app(ns: str) -> ServingApp:
        return ServingApp(Settings(models_uri=root, tenant=TENANT, datastore_namespace=ns))

    # One rule (simrec.core.tenancy.datastore_namespace), the one the Beam load writes by.
    assert app("").namespace(TENANT) == TENANT and app("").namespace("shop2") == "shop2"
    assert app("rec-{tenant}").namespace("shop2") == "rec-shop2"
    assert app("prod").namespace(TENANT) == "prod"  # a fixed one: single-tenant only
    with pytest.raises(ValueError, match="one namespace for every tenant"):
        ServingApp(Settings(models_uri=root, tenant=TENANT, datastore_namespace="prod",
                            serving_tenants="b", serving_backend="datastore",
                            datastore_project="p"))


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/recommendations", "browsed=" + "x" * (MAX_SKU_LENGTH + 1), "browsed"),
        ("/recommendations", "category=" + "x" * (MAX_SKU_LENGTH + 1), "category"),
        ("/recommendations", "category=", "category"),
        ("/recommendations", "in_stock_only=maybe", "in_stock_only"),
        ("/recommendations", "tenant=a&tenant=b", "tenant"),
        ("/similar", "sku=" + "x" * (MAX_SKU_LENGTH + 1), "sku"),
        ("/similar", "sku=a&exclude=" + "y" * (MAX_SKU_LENGTH + 1), "exclude"),
        ("/recommendations", "browsed=" + "a," * (max_query_bytes(200) // 2), "query"),
        ("/healthz", "x=1", "x"),
    ],
)
def test_limits_are_400_with_a_json_error(client: Client, path, query, field) -> None:
    response = client.get(f"{path}?{query}")
    body = response.get_json()
    assert response.status_code == 400, body
    assert body["field"] == field and body["error"]


def test_odd_encodings_are_handled(client: Client) -> None:
    for query in ("browsed=%ff%fe", "browsed=%", "browsed=a%2Cb", "browsed=\u00e9", "n=%31"):
        response = client.get(f"/recommendations?{query}")
        assert response.status_code == 200, (query, response.get_json())
    assert skus(client.get("/recommendations?browsed=a%2Cb").get_json()) == ["c", "d"]


def test_openapi_document_describes_every_endpoint(client: Client) -> None:
    doc, status = get(client, "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    app = ServingApp(Settings(models_uri="unused", tenant=TENANT))
    assert set(doc["paths"]) == set(app.routes)
    params = {p["name"] for p in doc["paths"]["/recommendations"]["get"]["parameters"]}
    assert params == set(RECOMMEND_PARAMS)
    n = next(p for p in doc["paths"]["/similar"]["get"]["parameters"] if p["name"] == "n")
    assert n["schema"]["maximum"] == 100
    for path, item in doc["paths"].items():
        assert "200" in item["get"]["responses"], path


def test_head_and_method_not_allowed(client: Client) -> None:
    head = client.head("/recommendations?browsed=a")
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) > 0
    response = client.post("/similar?sku=a")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


# --- the load pipeline publishes the catalog ------------------------------------------------
def test_load_pipeline_publishes_a_catalog(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simrec.jobs import beam_load
    from tests.builders import RUN_ID, random_neighbors, write_similarities

    neighbors, items = random_neighbors(seed=8)
    uri = write_similarities(tmp_path, neighbors, items)
    models = str(tmp_path / "bucket")
    skus = sorted(neighbors)
    catalog = tmp_path / "catalog.parquet"
    pq.write_table(
        pa.table({"sku": skus, "category": ["k"] * len(skus),
                  "in_stock": [True] * len(skus), "brand": ["acme"] * len(skus)}),
        catalog,
    )
    argv = ["--similarities", uri, "--models_root", models, "--catalog", str(catalog)]
    summary = beam_load.run(argv)
    snapshot = snapshots.read_snapshot(models, "default", summary["version"])
    assert summary["version"] == RUN_ID and snapshot.metadata["catalog"] == str(catalog)
    assert snapshot.catalog.to_pydict()["sku"] == skus
    assert snapshot.catalog.column_names == ["sku", "category", "in_stock", "brand"]

    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"sku": ["a"], "in_stock": [True]}), bad)
    for path, message in ((bad, "lacks column"), (tmp_path / "none.parquet", "no catalog")):
        with pytest.raises(beam_load.LoadError, match=message):
            beam_load.run([*argv[:4], "--catalog", str(path)])


def test_cloud_run_startup_probe_asks_startupz() -> None:
    """The startup probe is an HTTP GET of the app's /startupz (tested below) on the
    container's port."""
    tf = pytest.importorskip("tests.cloud.test_terraform")
    service = tf.module("modules/serving").resource("google_cloud_run_v2_service", "recommend")
    container = tf.block(tf.block(service, "template"), "containers")
    probe = tf.block(container, "startup_probe")
    assert "tcp_socket" not in probe
    http_get = tf.block(probe, "http_get")
    assert http_get["path"] == "/startupz" and "/startupz" in api.ENDPOINTS
    assert http_get["port"] == tf.block(container, "ports")["container_port"]
    assert probe["timeout_seconds"] <= probe["period_seconds"]  # Cloud Run's rule
    assert probe["period_seconds"] * probe["failure_threshold"] <= 240  # Cloud Run maximum


def test_startupz_waits_for_a_published_model_but_not_for_none(tmp_path) -> None:
    """Before the first nightly run (no LATEST) the probe passes, so the first deploy starts;
    once LATEST names a model, a new instance is not ready until that model is loaded."""
    api.HOLDERS.clear()
    root = str(tmp_path / "models")
    settings = Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0)

    def get(app: ServingApp, path: str) -> tuple[int, dict]:
        status, _, data = app.respond("GET", path, "")
        return status, json.loads(data)

    app = ServingApp(settings)
    assert get(app, "/startupz")[0] == 503  # LATEST not read yet
    app.holder.refresh()
    status, body = get(app, "/startupz")
    assert status == 200 and body["model_version"] is None
    assert get(app, "/healthz")[0] == 503  # healthz still says: no model
    api.HOLDERS.clear()
    publishing.write_snapshot(root, TENANT, model("v1"))
    fresh = ServingApp(settings)
    fresh.holder.published = True  # LATEST seen by a load still running
    assert get(fresh, "/startupz")[0] == 503
    fresh.holder.refresh()
    status, body = get(fresh, "/startupz")
    assert status == 200 and body["model_version"] == "v1"
    api.HOLDERS.clear()


def test_routes_are_the_documented_endpoints() -> None:
    app = ServingApp(Settings(models_uri="unused", tenant=TENANT))
    assert tuple(app.routes) == api.ENDPOINTS
