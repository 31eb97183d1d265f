"""The recommend endpoint's logic: parse and validate a request, score, answer JSON.

Framework-light and lean on the hot path: ``ServingApp`` is itself a plain WSGI app
(``simrec serve`` runs it in gunicorn) that parses ``QUERY_STRING`` once, looks skus up
in the model's precomputed dict, scores with the model's compiled ``Scorer`` and writes
the body with orjson; ``handle`` serves a flask/werkzeug request (the Cloud Function) the
same way, and the endpoint methods take the query parameters as a mapping (a werkzeug
``MultiDict`` or a plain ``dict`` of strings), which is how the CLI calls them.

Endpoints (GET or HEAD only; other methods -> 405, other paths -> 404, all JSON; the
OpenAPI 3 description at ``/openapi.json`` is the reference):

* ``/recommendations?browsed=a,b&basket=c&purchased=d&n=10[&exclude_seen=false]
  [&exclude=x,y][&in_stock_only=true][&category=C][&tenant=T]`` -> ``{"items": [{"sku",
  "score", "because": [{"sku", "share"}], ["category", "in_stock", "attributes"]}],
  "model_version", "fallback"}``.
* ``/similar?sku=X&n=10[&exclude=..][&in_stock_only=..][&category=..][&tenant=..]`` ->
  ``{"sku", "items": [{"sku", "score", ...}], "model_version"}``. With a catalog, an
  item with few or no events (a sku only the catalog lists, too) gets the blended row of
  ``simrec.core.content`` and each item a ``reason``; ``/recommendations`` scores such
  input items on their blended rows.
* ``/healthz[?tenant=T]`` -> ``{"status": "ok", "model_version", "items"}``; 503 until a
  model is loaded.
* ``/startupz`` -> the Cloud Run startup probe: 200 once the default tenant's model is
  loaded, or once LATEST names none (before the first nightly run); 503 while loading.
* ``/make_recommendation?browsed=..&basket=..&purchased=..&n=..`` -> ``{"result":
  [{"item", "score"}]}``: the original service's contract, so its clients switch unchanged.
* ``/openapi.json``: the OpenAPI document.

Parameter rules (a violation -> 400 ``{"error", "field"}``):

* The query string is at most ``max_query_bytes(max_skus_per_request)`` long (``field`` =
  ``query``): room for ``max_skus_per_request`` skus of ``MAX_SKU_LENGTH`` characters;
  the server accepts request lines that long (``simrec.serving.server``), and answers a
  longer line with a JSON 414.
* sku lists are comma-separated; each entry is stripped of surrounding spaces and empty
  entries are ignored (``a,,b`` and a trailing comma are fine); an entry is at most
  ``MAX_SKU_LENGTH`` characters. A list parameter may be repeated
  (``browsed=a&browsed=b``); single-valued ones may not.
* At most ``max_skus_per_request`` entries in browsed, basket and purchased together
  (duplicates count), and at most as many in ``exclude``; ``field`` names the parameter
  at which the limit is crossed.
* ``n``: a plain decimal integer in 1..``max_n``; default 10.
* Booleans (``exclude_seen``, ``in_stock_only``): ``true/false`` (also ``1/0``,
  ``yes/no``), case-insensitive.
* ``category`` / ``in_stock_only`` need a model with an item catalog (else 400).
* ``tenant``: a shop the deployment serves (``tenant`` plus ``serving_tenants``; with
  ``*`` any validly named tenant (``simrec.core.tenancy``) that had a
  ``models/<tenant>/LATEST`` at the last listing, made at start and every
  ``model_refresh_seconds``); another name -> 404 ``{"error", "field": "tenant"}``, and
  nothing is kept for it. Of the unlisted tenants at most ``model_holder.MAX_OPEN_TENANTS`` are
  kept (least recently used dropped first; a dropped one answers 503 while it reloads).
* Unknown parameter names are rejected on the new endpoints (a typo such as
  ``purchase=`` would otherwise silently give fallback results); ``/make_recommendation``
  ignores them, as the original service did.

Scoring: an item's weight is ``ActionWeights.of(action)``, summed over the lists it is
in (see ``simrec.core.scoring``). Unknown skus are ignored. ``/recommendations`` leaves
the input items out unless ``exclude_seen=false``, and the ``exclude`` skus always.
``because`` names the (up to 3) input items whose terms contributed most to an item's
score, with their share of it. When nothing scores it answers popular items with
``"fallback": true``: first the most popular of the input items' categories (or of the
``category`` filter), then the most popular overall, filters and exclusions applied,
popularity as score. ``/make_recommendation`` keeps input items and has no fallback
(an empty ``result``), like the original service; its error bodies carry ``"result": []``
too. Until a configured tenant's first model is loaded (in the background: never on the
request path) its endpoints, ``/healthz`` included, answer 503 ``{"error": ...}``; so
does a request whose Datastore read fails.

Each response is computed from one model reference taken at the start of the request,
so it never mixes two versions, and names that version.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import orjson

from simrec import storage
from simrec.config import Settings
from simrec.core import events, layout
from simrec.core.actions import Action
from simrec.core.scoring import make_scorer
from simrec.core.tenancy import (
    TENANT_PLACEHOLDER,
    check_tenant,
    datastore_namespace,
    is_tenant_name,
)
from simrec.serving.datastore_backend import (
    DatastoreNeighbors,
    DatastoreUnavailable,
    default_client_factory,
)
from simrec.serving.model_holder import HOLDERS, LoadedModel, ModelHolder

log = logging.getLogger(__name__)

Response = tuple[dict[str, Any], int]
Params = dict[str, list[str]]

DEFAULT_N = 10
MAX_SKU_LENGTH = events.MAX_SKU_LENGTH  # one limit: export rejects longer skus
QUERY_OVERHEAD_BYTES = 4_096  # parameter names, n, flags, category, tenant, exclude
ENDPOINTS = ("/recommendations", "/similar", "/healthz", "/startupz",
             "/make_recommendation", "/openapi.json", "/items", "/runs/latest")  # fmt: skip
BECAUSE_K = 3
SKU_LISTS: tuple[tuple[str, str], ...] = (
    ("browsed", Action.BROWSED.value),
    ("basket", Action.BASKET.value),
    ("purchased", Action.PURCHASE.value),
)
RECOMMEND_PARAMS = (
    "browsed", "basket", "purchased", "n", "exclude_seen", "exclude", "in_stock_only",
    "category", "tenant",
)  # fmt: skip
SIMILAR_PARAMS = ("sku", "n", "exclude", "in_stock_only", "category", "tenant")
HEALTH_PARAMS = ("tenant",)
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_DIGITS = re.compile(r"[0-9]+")
_EMPTY_I32 = np.zeros(0, dtype=np.int32)
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


class BadRequest(Exception):
    """A parameter is wrong: answered as 400 ``{"error": message, "field": field}``."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def response(self) -> Response:
        return {"error": self.message, "field": self.field}, self.status


class Unavailable(Exception):
    """No model yet, or the Datastore read failed: answered 503 ``{"error"}``."""


# --- model holders: the process's one cache, simrec.serving.model_holder.HOLDERS -------
get_holder = HOLDERS.get
clear_holders = HOLDERS.clear


# --- parameter parsing ------------------------------------------------------------------
def max_query_bytes(max_skus: int) -> int:
    """The longest query string accepted: ``max_skus`` skus of ``MAX_SKU_LENGTH``
    characters with their commas (unescaped), plus ``QUERY_OVERHEAD_BYTES`` for the
    other parameters. The server's request-line limit derives from it
    (``simrec.serving.server.max_request_line``), so this limit is the one that answers."""
    return max_skus * (MAX_SKU_LENGTH + 1) + QUERY_OVERHEAD_BYTES


def parse_query_string(query: str, max_bytes: int) -> Params:
    """A raw (WSGI, latin-1) query string -> name -> list of values, length checked."""
    if len(query) > max_bytes:
        raise BadRequest("query", f"query string longer than {max_bytes} bytes")
    if not query:
        return {}
    if query.isascii() and "%" not in query and "+" not in query:
        # The common case, nothing to decode: parse_qsl's result, without its cost.
        pairs: Iterable[tuple[str, str]] = (
            part.partition("=")[::2] for part in query.split("&") if part
        )
    else:
        text = query.encode("latin-1", "replace").decode("utf-8", "replace")
        pairs = parse_qsl(text, keep_blank_values=True, errors="replace")
    params: Params = {}
    for name, value in pairs:
        values = params.get(name)
        if values is None:
            params[name] = [value]
        else:
            values.append(value)
    return params


def normalise_params(args: Mapping[str, Any]) -> Params:
    """A MultiDict or a plain mapping -> name -> list of raw values."""
    if hasattr(args, "getlist"):
        return {name: list(args.getlist(name)) for name in args}
    out: Params = {}
    for name, value in args.items():
        out[name] = [value] if isinstance(value, str) else [str(v) for v in value]
    return out


def check_names(params: Params, allowed: tuple[str, ...]) -> None:
    for name in params:
        if name not in allowed:
            raise BadRequest(
                name, f"unknown parameter {name!r}; expected one of {', '.join(allowed)}"
            )


def single(params: Params, name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(name, f"parameter {name!r} given {len(values)} times; give it once")
    return values[0]


def parse_n(params: Params, max_n: int) -> int:
    raw = single(params, "n")
    if raw is None:
        return min(DEFAULT_N, max_n)
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        raise BadRequest("n", f"n must be an integer in 1..{max_n}, got {raw[:40]!r}")
    value = int(text) if len(text) <= 12 else max_n + 1
    if not 1 <= value <= max_n:
        raise BadRequest("n", f"n must be an integer in 1..{max_n}, got {raw[:40]!r}")
    return value


def parse_bool(params: Params, name: str, default: bool) -> bool:
    raw = single(params, name)
    if raw is None:
        return default
    try:
        return _BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise BadRequest(name, f"{name} must be true or false, got {raw[:40]!r}") from None


def split_skus(values: list[str], name: str = "sku") -> list[str]:
    """Comma-separated entries, stripped; empty entries ignored; length checked."""
    out = []
    for value in values:
        for s in value.split(","):
            s = s.strip()
            if s:
                if len(s) > MAX_SKU_LENGTH:
                    raise BadRequest(name, f"a sku in {name} is longer than {MAX_SKU_LENGTH}")
                out.append(s)
    return out


def parse_sku_lists(params: Params, max_skus: int) -> list[tuple[str, str]]:
    """``(sku, action)`` pairs in list order (browsed, basket, purchased), limit checked."""
    pairs: list[tuple[str, str]] = []
    for name, action in SKU_LISTS:
        values = params.get(name)
        if not values:
            continue
        pairs += [(sku, action) for sku in split_skus(values, name)]
        if len(pairs) > max_skus:
            raise BadRequest(
                name, f"too many skus: more than {max_skus} in browsed, basket and purchased"
            )
    return pairs


def parse_text(params: Params, name: str) -> str | None:
    raw = single(params, name)
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        raise BadRequest(name, f"{name} must not be empty")
    if len(text) > MAX_SKU_LENGTH:
        raise BadRequest(name, f"{name} is longer than {MAX_SKU_LENGTH} characters")
    return text


# --- the app --------------------------------------------------------------------------
class ServingApp:
    """The endpoints over the tenants' models; see the module docstring.

    Also a WSGI callable: ``gunicorn`` (``simrec serve``) runs an instance directly.
    ``background_load``: new model versions load in a background thread (see
    ``ModelHolder``); for long-running servers, not for the Cloud Function.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        holder: ModelHolder | None = None,
        *,
        datastore: DatastoreNeighbors | None = None,
        background_load: bool = False,
    ) -> None:
        s = self.settings = settings or Settings()
        # Plain attributes: nothing on the request path touches pydantic.
        self.tenant = s.tenant
        self.max_n = s.max_n
        self.max_skus = s.max_skus_per_request
        self.max_query = max_query_bytes(self.max_skus)
        self.models_root = s.models_root
        self.refresh_seconds = s.model_refresh_seconds
        self.background_load = background_load
        weights = s.weights
        self.weights = {action: weights.of(action) for _, action in SKU_LISTS}
        extra = {t.strip() for t in s.serving_tenants.split(",") if t.strip()}
        self.any_tenant = "*" in extra
        self.tenants = ({s.tenant} | extra) - {"*"}
        for name in self.tenants:
            check_tenant(name)
        # Holders come from HOLDERS (configured tenants pinned, others LRU); a holder
        # given here serves the default tenant.
        self._given_holder = holder
        self._holders_lock = threading.Lock()
        # With '*': the tenants that have a LATEST, listed at start and re-listed in the
        # background every refresh interval, so no request waits on storage for them.
        self._listed: frozenset[str] | None = None
        self._listed_next = 0.0
        self._lister: threading.Thread | None = None
        self.backend = s.serving_backend
        self.datastore = datastore
        if self.backend == "datastore" and datastore is None:
            project = s.datastore_project or s.gcp_project
            if not project:
                raise ValueError(
                    "SIMREC_SERVING_BACKEND=datastore needs SIMREC_DATASTORE_PROJECT"
                )
        if self.backend == "datastore" and (len(self.tenants) > 1 or self.any_tenant):
            ns = s.datastore_namespace
            if ns and TENANT_PLACEHOLDER not in ns:
                raise ValueError(
                    f"SIMREC_DATASTORE_NAMESPACE={ns!r} is one namespace for every tenant; "
                    f"with several tenants leave it empty or include {TENANT_PLACEHOLDER}"
                )
        if self.backend == "datastore" and datastore is None:
            self.datastore = DatastoreNeighbors(
                default_client_factory(project), s.datastore_cache_items, s.datastore_cache_seconds
            )
        self.routes: dict[str, Callable[[Params], Response]] = {
            "/recommendations": self._recommendations,
            "/similar": self._similar,
            "/healthz": self._healthz,
            "/startupz": self._startupz,
            "/make_recommendation": self._make_recommendation,
            "/openapi.json": self._openapi,
        }
        from simrec.serving.ui import endpoints as ui_endpoints  # the /ui page's own

        self.routes["/items"] = lambda params: ui_endpoints.items(self, params)
        self.routes["/runs/latest"] = lambda params: ui_endpoints.runs_latest(self, params)
        self._openapi_doc: dict[str, Any] | None = None

    # --- tenants and models ------------------------------------------------------------
    @property
    def holder(self) -> ModelHolder:
        """The default tenant's model holder."""
        return self._holder(self.tenant)

    def start(self, wait: bool = True) -> None:
        """Load the configured tenants' models (a server calls this at start): the
        default tenant's before returning when ``wait``, all others in loader threads;
        with ``serving_tenants='*'`` list the tenants that have a model, too."""
        for tenant in sorted(self.tenants, key=lambda t: t != self.tenant):
            self._holder(tenant).start(wait=wait and tenant == self.tenant)
        if self.any_tenant:
            if wait:
                self._list_tenants()
            else:
                self._start_lister()

    def _holder(self, tenant: str) -> ModelHolder:
        if self._given_holder is not None and tenant == self.tenant:
            return self._given_holder
        return HOLDERS.get(self.models_root, tenant, self.refresh_seconds, self.background_load)

    def _other_holder(self, tenant: str) -> ModelHolder | None:
        """With ``serving_tenants='*'``: the holder of a tenant that is not configured,
        None when the tenant has no model (nothing is allocated for it)."""
        holder = HOLDERS.find(self.models_root, tenant, self.refresh_seconds, self.background_load)
        if holder is not None:
            return holder
        if not self._has_model(tenant):
            return None
        return HOLDERS.get(
            self.models_root, tenant, self.refresh_seconds, self.background_load, pinned=False
        )

    def _has_model(self, tenant: str) -> bool:
        """Whether ``tenant`` had a LATEST at the last listing (see ``__init__``)."""
        listed = self._listed
        if listed is None and not self.background_load:
            self._list_tenants()  # the one-shot CLI: list now
            listed = self._listed
        elif time.monotonic() >= self._listed_next:
            self._start_lister()
        if listed is None:
            raise Unavailable("the list of tenants is not loaded yet; retry")
        return tenant in listed

    def _start_lister(self) -> None:
        with self._holders_lock:
            if self._lister is not None and self._lister.is_alive():
                return
            self._listed_next = time.monotonic() + self._list_interval()
            self._lister = threading.Thread(
                target=self._list_tenants, name="tenant-lister", daemon=True
            )
            self._lister.start()

    def _list_interval(self) -> float:
        return self.refresh_seconds if self.refresh_seconds > 0 else math.inf

    def _list_tenants(self) -> None:
        """One listing of ``models/*/LATEST`` (a prefix listing on GCS)."""
        models = layout.join(self.models_root, "models")
        try:
            fs, path = storage.filesystem(models)
            found = fs.glob(layout.join(path, "*", layout.LATEST_NAME))
        except Exception:
            log.exception("listing the tenants under %s failed", models)
            return
        names = {f.rstrip("/").split("/")[-2] for f in found}
        self._listed = frozenset(n for n in names if is_tenant_name(n))
        self._listed_next = time.monotonic() + self._list_interval()

    def namespace(self, tenant: str) -> str:
        """Datastore namespace of a tenant (``simrec.core.tenancy.datastore_namespace``)."""
        return datastore_namespace(self.settings.datastore_namespace, tenant)

    def _model(self, params: Params) -> tuple[str, LoadedModel]:
        raw = single(params, "tenant")
        tenant = self.tenant if raw is None else raw.strip()
        if tenant in self.tenants:
            holder: ModelHolder | None = self._holder(tenant)
        elif self.any_tenant and is_tenant_name(tenant):
            holder = self._other_holder(tenant)
        else:
            holder = None
        if holder is None:
            raise BadRequest("tenant", f"unknown tenant {tenant[:64]!r}", 404)
        model = holder.get()
        if model is None:
            raise Unavailable(f"no model loaded yet for tenant {tenant!r}")
        return tenant, model

    # --- transport ---------------------------------------------------------------------
    def dispatch(self, method: str, path: str, query: str | Params) -> tuple[Response, bool]:
        """``(body, status)`` and whether the method was allowed."""
        path = path.rstrip("/") or "/"
        endpoint = self.routes.get(path)
        if endpoint is None:
            names = ", ".join(sorted(self.routes))
            return ({"error": f"no endpoint {path[:100]!r}; use one of {names}"}, 404), True
        if method != "GET" and method != "HEAD":
            return ({"error": f"method {method} not allowed on {path}; use GET"}, 405), False
        try:
            params = parse_query_string(query, self.max_query) if isinstance(query, str) else query
            return endpoint(params), True
        except BadRequest as exc:
            body, status = exc.response()
        except Unavailable as exc:
            body, status = {"error": str(exc)}, 503
        if path == "/make_recommendation":
            body = {"result": [], **body}
        return (body, status), True

    def handle(self, request: Any) -> Response:
        """Serve a flask/werkzeug request (the Cloud Function)."""
        environ = getattr(request, "environ", None)
        query = environ.get("QUERY_STRING", "") if environ else normalise_params(request.args)
        return self.dispatch(request.method, request.path, query)[0]

    def respond(
        self, method: str, path: str, query: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)`` of one request: what the WSGI and ASGI apps send."""
        try:
            (body, status), allowed = self.dispatch(method, path, query)
            data = orjson.dumps(body, default=str)
        except Exception:  # a bug: still a JSON answer, and logged
            log.exception("request %s %s failed", method, path[:200])
            status, allowed, data = 500, True, b'{"error":"internal error"}'
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if not allowed:
            headers.append(("Allow", "GET, HEAD"))
        return status, headers, b"" if method == "HEAD" else data

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI app."""
        status, headers, data = self.respond(
            environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        )
        start_response(_STATUS.get(status, f"{status} Error"), headers)
        return [data]

    # --- public endpoint methods (mappings of parameters, as the CLI calls them) -------
    def recommendations(self, args: Mapping[str, Any]) -> Response:
        return self.dispatch("GET", "/recommendations", normalise_params(args))[0]

    def similar(self, args: Mapping[str, Any]) -> Response:
        return self.dispatch("GET", "/similar", normalise_params(args))[0]

    def healthz(self, args: Mapping[str, Any] | None = None) -> Response:
        return self.dispatch("GET", "/healthz", normalise_params(args or {}))[0]

    def make_recommendation(self, args: Mapping[str, Any]) -> Response:
        return self.dispatch("GET", "/make_recommendation", normalise_params(args))[0]

    # --- endpoints -------------------------------------------------------------------
    def _filters(self, params: Params, model: LoadedModel) -> np.ndarray | None:
        category = parse_text(params, "category")
        in_stock_only = parse_bool(params, "in_stock_only", default=False)
        if category is None and not in_stock_only:
            return None
        if model.catalog is None:
            field = "category" if category is not None else "in_stock_only"
            raise BadRequest(field, f"model {model.version!r} has no item catalog to filter on")
        return model.catalog.mask(category, in_stock_only)

    def _excluded(self, params: Params, model: LoadedModel) -> list[int]:
        values = params.get("exclude")
        if not values:
            return []
        skus = split_skus(values, "exclude")
        if len(skus) > self.max_skus:
            raise BadRequest("exclude", f"too many skus in exclude: more than {self.max_skus}")
        index = model.sku_index
        return [index[s] for s in skus if s in index]

    def _scorer(self, tenant: str, model: LoadedModel, items: list[int]) -> tuple[Any, Any]:
        """The scorer and the query's row numbers in it, for the configured backend."""
        if self.datastore is None:
            return model.scorer, np.array(items, dtype=np.int32)
        try:
            return self.datastore.scorer(self.namespace(tenant), model, items)
        except DatastoreUnavailable as exc:
            log.warning("%s", exc)
            raise Unavailable("the neighbor store is unavailable; retry") from None

    def _item(self, model: LoadedModel, j: int, score: float) -> dict[str, Any]:
        item: dict[str, Any] = {"sku": model.snapshot.skus[j], "score": score}
        catalog = model.catalog
        if catalog is not None:
            item.update(catalog.fields(j))
        return item

    def _recommendations(self, params: Params) -> Response:
        check_names(params, RECOMMEND_PARAMS)
        n = parse_n(params, self.max_n)
        exclude_seen = parse_bool(params, "exclude_seen", default=True)
        pairs = parse_sku_lists(params, self.max_skus)
        tenant, model = self._model(params)
        allowed = self._filters(params, model)
        excluded = self._excluded(params, model)

        items, w = self._query(model, pairs)
        if exclude_seen:
            excluded += items
        scored: list[tuple[int, float]] = []
        cold = self._cold_query(model, pairs)
        if cold is not None:  # an input item with few or no events: blended rows
            scorer, rows, w, query_skus = cold
        elif items:
            scorer, rows = self._scorer(tenant, model, items)
            query_skus = [model.snapshot.skus[i] for i in items]
        if cold is not None or items:
            x = np.array(excluded, dtype=np.int32) if excluded else _EMPTY_I32
            scored = scorer.score(rows, w, n, x, allowed)
        out = []
        if scored:
            terms = scorer.contributions(rows, w, [j for j, _ in scored], BECAUSE_K)
            for (j, s), row in zip(scored, terms, strict=True):
                item = self._item(model, j, s)
                item["because"] = [
                    {"sku": query_skus[q], "share": round(c / s, 4)} for q, c in row
                ]
                out.append(item)
            return {"items": out, "model_version": model.version, "fallback": False}, 200
        category = parse_text(params, "category")
        for j, s in self._popular(model, n, set(excluded), allowed, items, category):
            item = self._item(model, j, s)
            item["because"] = []
            out.append(item)
        return {"items": out, "model_version": model.version, "fallback": True}, 200

    def _popular(
        self,
        model: LoadedModel,
        n: int,
        skip: set[int],
        allowed: np.ndarray | None,
        items: list[int],
        category: str | None,
    ) -> list[tuple[int, float]]:
        """The fallback: popular items of the input items' (or the filter's) categories
        first, most popular first, then the most popular overall."""
        popularity = model.popularity

        def take(order: Iterable[int], limit: int) -> list[int]:
            out: list[int] = []
            if limit <= 0:
                return out
            for j in order:
                if j not in skip and (allowed is None or allowed[j]):
                    out.append(j)
                    if len(out) >= limit:
                        break
            return out

        chosen: list[int] = []
        catalog = model.catalog
        if catalog is not None:
            categories = [category] if category else []
            for i in items:
                c = catalog.category[i]
                if c is not None and c not in categories:
                    categories.append(c)
            lists = [take(catalog.popular_by_category.get(c, ()), n) for c in categories]
            if lists:
                merged = heapq.merge(*lists, key=lambda j: (-popularity[j], j))
                chosen = list(dict.fromkeys(merged))[:n]
        if len(chosen) < n:
            skip = skip | set(chosen)
            chosen += take(model.popular_list, n - len(chosen))
        return [(j, popularity[j]) for j in chosen]

    def _similar(self, params: Params) -> Response:
        check_names(params, SIMILAR_PARAMS)
        n = parse_n(params, self.max_n)
        sku = (single(params, "sku") or "").strip()
        if not sku:
            raise BadRequest("sku", "give the item as sku=<sku>")
        if len(sku) > MAX_SKU_LENGTH:
            raise BadRequest("sku", f"sku is longer than {MAX_SKU_LENGTH} characters")
        tenant, model = self._model(params)
        allowed = self._filters(params, model)
        skip = set(self._excluded(params, model))
        item = model.sku_index.get(sku)
        content = model.content
        if item is None and (content is None or sku not in content.row_of):
            return {"error": f"unknown sku {sku[:100]!r}", "sku": sku}, 404
        reasons: list[str] | None = None
        if item is None:  # in the catalog only: attributes alone
            cols, sims = _EMPTY_I32, np.zeros(0, dtype=np.float32)
        elif self.datastore is None:
            cols, sims = model.snapshot.neighbors(item)
        else:
            try:
                (cols, sims), = self.datastore.rows(self.namespace(tenant), model, [item])
            except DatastoreUnavailable as exc:
                log.warning("%s", exc)
                raise Unavailable("the neighbor store is unavailable; retry") from None
        if content is not None and content.is_cold(item):
            cols, sims, reasons = content.blended_row(sku, item, (cols, sims))
        out = []
        for k, (j, s) in enumerate(zip(cols.tolist(), sims.tolist(), strict=True)):
            if j in skip or (allowed is not None and not allowed[j]):
                continue
            out.append(self._item(model, j, s))
            if reasons is not None:
                out[-1]["reason"] = reasons[k]
            if len(out) >= n:
                break
        return {"sku": sku, "items": out, "model_version": model.version}, 200

    def _healthz(self, params: Params) -> Response:
        check_names(params, HEALTH_PARAMS)
        try:
            _, model = self._model(params)
        except Unavailable as exc:
            return {"status": "unavailable", "error": str(exc)}, 503
        return {"status": "ok", "model_version": model.version, "items": model.n_items}, 200

    def _startupz(self, params: Params) -> Response:
        """The Cloud Run startup probe: ready once the default tenant's model is loaded,
        or once LATEST was read and names no model (a deployment before its first nightly
        run: nothing to wait for, and every endpoint answers 503 until one is published).
        While a published model is still loading, 503, so no instance takes traffic
        before its model is in memory."""
        check_names(params, ())
        holder = self.holder
        model = holder.current
        if model is not None:
            return {"status": "ok", "model_version": model.version}, 200
        if holder.published is False:
            return {"status": "no model published yet", "model_version": None}, 200
        return {"status": "loading", "error": "the model is not loaded yet"}, 503

    def _query(
        self, model: LoadedModel, pairs: list[tuple[str, str]]
    ) -> tuple[list[int], np.ndarray]:
        """Known input skus -> (item indices in first-appearance order, summed weights).

        An item given under several actions gets the sum of their weights (as
        ``simrec.core.scoring.Query.from_pairs``; built inline here, on the hot path).
        """
        index, weights = model.sku_index, self.weights
        summed: dict[int, float] = {}
        for sku, action in pairs:
            i = index.get(sku)
            if i is not None:
                summed[i] = summed.get(i, 0.0) + weights[action]
        items = list(summed)
        return items, np.fromiter(summed.values(), dtype=np.float64, count=len(items))

    def _cold_query(
        self, model: LoadedModel, pairs: list[tuple[str, str]]
    ) -> tuple[Any, np.ndarray, np.ndarray, list[str]] | None:
        """When an input sku is in the catalog only: ``(scorer, rows, weights, query
        skus)`` over the query's blended rows (``simrec.core.content``); None otherwise
        (the model's scorer reads the blended rows of model items already) and with the
        Datastore backend. Weights are summed per sku as in ``_query``."""
        content = model.content
        if content is None or self.datastore is not None:
            return None
        index, summed = model.sku_index, {}
        for sku, action in pairs:
            if sku in index or sku in content.row_of:
                summed[sku] = summed.get(sku, 0.0) + self.weights[action]
        if all(sku in index for sku in summed):
            return None  # the model's scorer already reads the cold items' blended rows
        indptr, indices, scores = content.query_rows(summed, index, model.snapshot.neighbors)
        scorer = make_scorer(indptr, indices, scores, model.n_items)
        weights = np.fromiter(summed.values(), dtype=np.float64, count=len(summed))
        return scorer, np.arange(len(summed), dtype=np.int32), weights, list(summed)

    def _make_recommendation(self, params: Params) -> Response:
        """The original service's endpoint: input items kept, no fallback, ``result``."""
        n = parse_n(params, self.max_n)
        pairs = parse_sku_lists(params, self.max_skus)
        tenant, model = self._model(params)
        items, w = self._query(model, pairs)
        if not items:
            return {"result": []}, 200
        scorer, rows = self._scorer(tenant, model, items)
        skus = model.snapshot.skus
        scored = scorer.score(rows, w, n)
        return {"result": [{"item": skus[j], "score": s} for j, s in scored]}, 200

    def _openapi(self, params: Params) -> Response:
        if self._openapi_doc is None:
            from simrec.serving.openapi import openapi_document

            self._openapi_doc = openapi_document(self.max_n, self.max_skus, self.tenants)
        return self._openapi_doc, 200
