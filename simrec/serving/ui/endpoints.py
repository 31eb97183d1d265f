"""The two JSON endpoints the ``/ui`` page needs besides the scoring ones.

* ``/items?q=<prefix>&n=20[&tenant=T]`` -> ``{"items": [{"sku", "popularity",
  ["category", "in_stock", "attributes"]}], "matches", "model_version"}``: the model's
  items whose sku starts with ``q`` (case-insensitive), most popular first; no ``q``:
  the most popular items.
* ``/runs/latest[?tenant=T]`` -> ``{"tenant", "model_version", "model", "export",
  "similarities", "summary", "report"}``: the served model's metadata, its run's
  export and similarity manifests (from the bucket, ``None`` where absent), the run
  summary ``simrec run`` wrote (under ``reports_uri``) and the evaluation report's
  address when there is one.

Registered in ``ServingApp.routes`` and described in ``simrec.serving.openapi``;
parameters follow ``simrec.serving.api``'s rules (unknown names -> 400).
"""

from __future__ import annotations

import bisect
import logging
import threading
from typing import TYPE_CHECKING, Any

from simrec import storage
from simrec.core import layout
from simrec.serving import ui
from simrec.serving.api import MAX_SKU_LENGTH, BadRequest, Params, Response, check_names, parse_n
from simrec.serving.api import single as single_param
from simrec.serving.json_schemas import catalog_item, obj, response

if TYPE_CHECKING:
    from simrec.serving.api import ServingApp
    from simrec.serving.model_holder import LoadedModel

log = logging.getLogger(__name__)

ITEMS_PARAMS = ("q", "n", "tenant")
RUNS_PARAMS = ("tenant",)
SORT_LIMIT = 5_000  # more prefix matches than this: walk the popularity order instead
_CACHED = 8  # models whose search index / run manifests are kept


class _Recent:
    """A tiny bounded cache keyed by model version (the model objects are immutable)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], build: Any) -> Any:
        found = self._data.get(key)
        if found is None:
            found = build()
            with self._lock:
                if len(self._data) >= _CACHED:
                    self._data.pop(next(iter(self._data)))
                self._data[key] = found
        return found


_search_index = _Recent()
_manifests = _Recent()


def _index(model: LoadedModel) -> tuple[list[str], list[int]]:
    """The model's skus lower-cased and sorted, with their item numbers."""
    pairs = sorted((s.lower(), i) for i, s in enumerate(model.snapshot.skus))
    return [p for p, _ in pairs], [i for _, i in pairs]


def items(app: ServingApp, params: Params) -> Response:
    check_names(params, ITEMS_PARAMS)
    n = parse_n(params, app.max_n)
    q = (single_param(params, "q") or "").strip().lower()
    if len(q) > MAX_SKU_LENGTH:
        raise BadRequest("q", f"q is longer than {MAX_SKU_LENGTH} characters")
    tenant, model = app._model(params)
    keys, rows = _search_index.get((tenant, model.version, str(id(model))), lambda: _index(model))
    lo = bisect.bisect_left(keys, q)
    hi = bisect.bisect_left(keys, q + "\U0010ffff") if q else len(keys)
    popularity = model.popularity
    if hi - lo <= SORT_LIMIT:
        chosen = sorted(rows[lo:hi], key=lambda j: (-popularity[j], j))[:n]
    else:
        skus = model.snapshot.skus
        chosen = []
        for j in model.popular_list:
            if skus[j].lower().startswith(q):
                chosen.append(j)
                if len(chosen) >= n:
                    break
    out = []
    catalog = model.catalog
    for j in chosen:
        item: dict[str, Any] = {"sku": model.snapshot.skus[j], "popularity": popularity[j]}
        if catalog is not None:
            item.update(catalog.fields(j))
        out.append(item)
    return {"items": out, "matches": hi - lo, "model_version": model.version}, 200


def _read_json(uri: str) -> dict[str, Any] | None:
    try:
        found = storage.read_json(uri)
    except FileNotFoundError:
        return None
    except Exception as exc:  # shown as absent; the page is no reason to fail
        log.warning("reading %s failed: %s", uri, exc)
        return None
    return found if isinstance(found, dict) else None


def _run_manifests(app: ServingApp, tenant: str, run_id: str) -> dict[str, Any]:
    """The run's export and similarity manifests (the model version is the run id)."""
    root = app.settings.data_uri
    try:
        export = layout.export_manifest(root, tenant, run_id)
        sims = layout.similarities_manifest(root, tenant, run_id)
    except layout.BadName:
        return {"export": None, "similarities": None}
    return {"export": _read_json(export), "similarities": _read_json(sims)}


def runs_latest(app: ServingApp, params: Params) -> Response:
    check_names(params, RUNS_PARAMS)
    tenant, model = app._model(params)
    manifests = _manifests.get(
        (app.settings.data_uri, tenant, model.version),
        lambda: _run_manifests(app, tenant, model.version),
    )
    reports = app.settings.reports_uri
    summary = _read_json(ui.summary_uri(reports)) if reports else None
    report = None
    if reports and storage.exists(ui.report_uri(reports)):
        report = ui.REPORT_PATH
    return {
        "tenant": tenant,
        "model_version": model.version,
        "model": dict(model.snapshot.metadata or {}),
        **manifests,
        "summary": summary,
        "report": report,
    }, 200


def openapi_paths(
    n: dict[str, Any], tenant: dict[str, Any], errors: dict[str, Any]
) -> dict[str, Any]:
    """These endpoints' part of ``/openapi.json`` (``n``, ``tenant`` and the error
    responses are the document's shared ones)."""

    found = catalog_item({"sku": {"type": "string"}, "popularity": {"type": "number"}})
    maybe = {"type": ["object", "null"]}
    q = {
        "name": "q",
        "in": "query",
        "schema": {"type": "string", "maxLength": MAX_SKU_LENGTH},
        "description": "Start of the sku (case-insensitive); none: the most popular items.",
    }
    return {
        "/items": {
            "get": {
                "operationId": "items",
                "summary": "Search the model's items by sku prefix, most popular first.",
                "parameters": [q, n, tenant],
                "responses": {
                    "200": response(
                        obj(
                            {
                                "items": {"type": "array", "items": found},
                                "matches": {"type": "integer", "minimum": 0},
                                "model_version": {"type": "string"},
                            }
                        ),
                        "Matching items; `matches` counts them all.",
                    ),
                    **errors,
                },
            }
        },
        "/runs/latest": {
            "get": {
                "operationId": "runs_latest",
                "summary": "The served model's run: metadata, manifests, summary, report.",
                "parameters": [tenant],
                "responses": {
                    "200": response(
                        obj(
                            {
                                "tenant": {"type": "string"},
                                "model_version": {"type": "string"},
                                "model": {"type": "object"},
                                "export": maybe,
                                "similarities": maybe,
                                "summary": maybe,
                                "report": {"type": ["string", "null"]},
                            }
                        ),
                        "What is known of the run; null where absent.",
                    ),
                    **errors,
                },
            }
        },
    }
