"""The recommend endpoint: parse a request, ask the core recommender, answer JSON.

Framework-light and lean on the hot path: ``ServingApp`` is itself a plain WSGI app
(``simrec serve`` runs it in gunicorn; ``functions/recommend`` calls ``dispatch``) that
parses ``QUERY_STRING`` once (``simrec.serving.parameters``), looks skus up in the
model's precomputed dict, asks the model's ``simrec.core.recommender.Recommender`` and
writes the body with orjson. The endpoint methods take the query parameters as a mapping
(a werkzeug ``MultiDict`` or a plain ``dict`` of strings), which is how the CLI calls
them.

The endpoints, their parameters and answers are defined once: the parameters and their
rules in ``simrec.serving.parameters``, the document clients read in
``simrec.serving.openapi`` (served at ``/openapi.json``, generated from those same
declarations); the ranking, ``because`` and the fallback in
``simrec.core.recommender``. What stays here: the transport (GET or HEAD only, other
methods 405, other paths 404, every answer JSON, a bug 500), tenants (``tenant`` plus
``serving_tenants``; with ``*`` any validly named tenant that had a
``models/<tenant>/LATEST`` at the last listing, made at start and every
``model_refresh_seconds``, at most ``model_holder.MAX_OPEN_TENANTS`` of them kept, least
recently used dropped first) and the model lifecycle: until a tenant's first model is loaded (in the
background: never on the request path) its endpoints answer 503 ``{"error"}``, as does a
request whose Datastore read fails. Each response is computed from one model reference
taken at the start of the request, so it never mixes two versions, and names that
version.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson

from simrec import storage
from simrec.config import Settings
from simrec.core import layout
from simrec.core.recommender import BECAUSE_K, SHARE_DIGITS
from simrec.core.scoring import Query, make_scorer
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
from simrec.serving.parameters import (
    CATALOG_FILTERS,
    ENDPOINT_PARAMS,
    LENIENT,
    SKU_LISTS,
    BadRequest,
    Params,
    Response,
    check_names,
    max_query_bytes,
    normalise_params,
    parse_bool,
    parse_factor,
    parse_n,
    parse_query_string,
    parse_repeated,
    parse_sku,
    parse_sku_lists,
    parse_text,
    single,
    split_skus,
)
from simrec.serving.parameters import MAX_SKU_LENGTH as MAX_SKU_LENGTH  # re-exported

log = logging.getLogger(__name__)

UI_ENDPOINTS = ("/items", "/runs/latest")  # simrec.serving.ui.endpoints: the page's own
ENDPOINTS = (*ENDPOINT_PARAMS, *UI_ENDPOINTS)
BECAUSE_KEYS = ("sku", "share")  # an answer's because entry: the input sku, its share
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


class Unavailable(Exception):
    """No model yet, or the Datastore read failed: answered 503 ``{"error"}``."""



@contextmanager
def _store_errors() -> Iterator[None]:
    """A failed Datastore read: logged, the request answered 503."""
    try:
        yield
    except DatastoreUnavailable as exc:
        log.warning("%s", exc)
        raise Unavailable("the neighbor store is unavailable; retry") from None


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
        # Query.from_pairs' weight rule, checked once (an invalid weight still fails each
        # request there, as before).
        self.weights_valid = all(0.0 <= w < math.inf for w in self.weights.values())
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
            "/bought-together": self._bought_together,
            "/trending": self._trending,
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
            if path not in LENIENT and path in ENDPOINT_PARAMS:
                check_names(params, ENDPOINT_PARAMS[path])
            return endpoint(params), True
        except BadRequest as exc:
            body, status = exc.response()
        except Unavailable as exc:
            body, status = {"error": str(exc)}, 503
        if path == "/make_recommendation":
            body = {"result": [], **body}
        return (body, status), True

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

    def bought_together(self, args: Mapping[str, Any]) -> Response:
        return self.dispatch("GET", "/bought-together", normalise_params(args))[0]

    def trending(self, args: Mapping[str, Any]) -> Response:
        return self.dispatch("GET", "/trending", normalise_params(args))[0]

    def healthz(self, args: Mapping[str, Any] | None = None) -> Response:
        return self.dispatch("GET", "/healthz", normalise_params(args or {}))[0]

    def make_recommendation(self, args: Mapping[str, Any]) -> Response:
        return self.dispatch("GET", "/make_recommendation", normalise_params(args))[0]

    # --- endpoints -------------------------------------------------------------------
    def _filters(
        self, params: Params, model: LoadedModel, items: list[int]
    ) -> np.ndarray | None:
        """The item mask of the catalog filters (``parameters.CATALOG_FILTERS``), the
        current-item ones relative to ``items``; None without filters."""
        if params.keys().isdisjoint(CATALOG_FILTERS):
            return None
        category = parse_text(params, "category")
        in_stock_only = parse_bool(params, "in_stock_only", default=False)
        same_category = parse_bool(params, "same_category", default=False)
        price_within = parse_factor(params, "price_within")
        if category is None and not (in_stock_only or same_category) and price_within is None:
            return None
        catalog = model.catalog
        if catalog is None:
            given = {"category": category is not None, "in_stock_only": in_stock_only,
                     "same_category": same_category, "price_within": price_within is not None}
            field = next(f for f in CATALOG_FILTERS if given[f])  # fmt: skip
            raise BadRequest(field, f"model {model.version!r} has no item catalog to filter on")
        if price_within is not None and catalog.price is None:
            raise BadRequest(
                "price_within", f"model {model.version!r} has no numeric price in its catalog"
            )
        mask = catalog.mask(category, in_stock_only)
        if same_category or price_within is not None:
            mask = catalog.current_item_mask(mask, items, same_category, price_within)
        return mask

    def _excluded(self, params: Params, model: LoadedModel) -> list[int]:
        values = params.get("exclude")
        if not values:
            return []
        skus = split_skus(values, "exclude")
        if len(skus) > self.max_skus:
            raise BadRequest("exclude", f"too many skus in exclude: more than {self.max_skus}")
        index = model.sku_index
        return [index[s] for s in skus if s in index]

    def _scorer(self, tenant: str, model: LoadedModel, query: Query) -> tuple[Any, Any]:
        """The scorer and the query's rows in it: None (the model's own) in memory, a
        per-request matrix of the query items' neighbor lists with the Datastore."""
        if self.datastore is None or not len(query):
            return None, None
        with _store_errors():
            return self.datastore.scorer(self.namespace(tenant), model, query.items.tolist())

    def _neighbors(self, tenant: str, model: LoadedModel, items: list[int]) -> Any:
        """``neighbors(i)``: model item ``i``'s co-occurrence row, from the snapshot in
        memory, else from the Datastore (``items``, the ones asked for, in one read)."""
        if self.datastore is None:
            return model.snapshot.neighbors
        with _store_errors():
            rows = self.datastore.rows(self.namespace(tenant), model, items)
        return dict(zip(items, rows, strict=True)).__getitem__

    def _query(
        self, model: LoadedModel, pairs: list[tuple[str, str]]
    ) -> tuple[Query, list, bool]:
        """Known input skus -> the query (unknown skus are ignored), its items' skus and
        whether every input sku is a model item."""
        weights = self.weights
        found = model.sku_index.lookup([sku for sku, _ in pairs])
        if None not in found:  # every sku known: no per-pair filtering
            w = [weights[action] for _, action in pairs]
            if self.weights_valid and len(set(found)) == len(found):
                # No repeats: Query.from_pairs' arrays without its summing loop; the
                # skus in query order, as given.
                query = object.__new__(Query)
                object.__setattr__(query, "items", np.array(found, dtype=np.int32))
                object.__setattr__(query, "weights", np.array(w, dtype=np.float64))
                return query, [sku for sku, _ in pairs], True
            query = Query.from_pairs(zip(found, w, strict=True))
            if len(query) == len(pairs):
                return query, [sku for sku, _ in pairs], True
            return query, self._labels(model, query), True
        known = [(i, sku, action) for i, (sku, action) in zip(found, pairs, strict=True)
                 if i is not None]  # fmt: skip
        query = Query.from_pairs((i, weights[action]) for i, _, action in known)
        if len(query) == len(known):
            return query, [sku for _, sku, _ in known], False
        return query, self._labels(model, query), False

    @staticmethod
    def _labels(model: LoadedModel, query: Query) -> list[str]:
        skus = model.snapshot.skus
        return [skus[i] for i in query.items.tolist()]

    def _cold_query(
        self, tenant: str, model: LoadedModel, pairs: list[tuple[str, str]]
    ) -> tuple[Any, np.ndarray, np.ndarray, list[str]] | None:
        """When an input sku is in the catalog only: ``(scorer, rows, weights, query
        skus)`` over the query's blended rows (``simrec.core.content``), the model items'
        co-occurrence rows read from either backend; None otherwise (the model's scorer
        reads the blended rows of model items already). Weights are summed per sku as in
        ``_query``."""
        content = model.content
        if content is None:
            return None
        index, summed = model.sku_index, {}
        for sku, action in pairs:
            if sku in index or sku in content.row_of:
                summed[sku] = summed.get(sku, 0.0) + self.weights[action]
        if all(sku in index for sku in summed):
            return None
        neighbors = self._neighbors(tenant, model, [index[s] for s in summed if s in index])
        indptr, indices, scores = content.query_rows(summed, index, neighbors)
        scorer = make_scorer(indptr, indices, scores, model.n_items)
        weights = np.fromiter(summed.values(), dtype=np.float64, count=len(summed))
        return scorer, np.arange(len(summed), dtype=np.int32), weights, list(summed)

    def _recommendations(self, params: Params) -> Response:
        n = parse_n(params, self.max_n)
        exclude_seen = parse_bool(params, "exclude_seen", default=True)
        pairs = parse_sku_lists(params, self.max_skus)
        tenant, model = self._model(params)
        query, labels, all_known = self._query(model, pairs)
        allowed = (
            None if params.keys().isdisjoint(CATALOG_FILTERS)
            else self._filters(params, model, query.items.tolist())
        )  # fmt: skip
        excluded = self._excluded(params, model)
        # Only an input sku the model does not know can be a catalog-only one.
        cold = None if all_known else self._cold_query(tenant, model, pairs)
        if cold is not None:  # a catalog-only input sku: the query's blended rows
            c_scorer, c_rows, c_weights, c_labels = cold
            seen = query.items.tolist() if exclude_seen else []
            x = np.array([*excluded, *seen], dtype=np.int32)
            ranked = c_scorer.recommend(c_rows, c_weights, n, x, allowed, BECAUSE_K, c_labels,
                                        SHARE_DIGITS, BECAUSE_KEYS)  # fmt: skip
            if ranked:
                out = self._entries(model, ranked)
                return {"items": out, "model_version": model.version, "fallback": False}, 200
        scorer, rows = self._scorer(tenant, model, query)
        rec = model.recommender.recommend(
            query, n, exclude=excluded, exclude_query=exclude_seen, allowed=allowed,
            category=None if allowed is None else parse_text(params, "category"),
            scorer=scorer, rows=rows,
            labels=labels, because_keys=BECAUSE_KEYS,
        )  # fmt: skip
        out = self._entries(model, rec.ranked)
        return {"items": out, "model_version": model.version, "fallback": rec.fallback}, 200

    def _entries(self, model: LoadedModel, ranked: list[tuple[int, float, Any]]) -> list[dict]:
        """The answer's items ``{"sku", "score"[, catalog fields][, "because"]}`` of
        ``(item, score, because entries or None)``, copied from the catalog's per-item
        entries."""
        skus, catalog = model.snapshot.skus, model.catalog
        if catalog is None:
            out = [{"sku": skus[j], "score": s} for j, s, _ in ranked]
        else:
            cached, entry = catalog.entries.get, catalog.entry
            out = [{**(cached(j) or entry(j, skus[j])), "score": s} for j, s, _ in ranked]
        for item, (_, _, because) in zip(out, ranked, strict=True):
            if because is not None:
                item["because"] = because
        return out

    def _similar(self, params: Params) -> Response:
        n = parse_n(params, self.max_n)
        sku = parse_sku(params)
        tenant, model = self._model(params)
        item = model.sku_index.get(sku)
        allowed = self._filters(params, model, [] if item is None else [item])
        excluded = self._excluded(params, model)
        content = model.content
        if item is None and (content is None or sku not in content.row_of):
            return {"error": f"unknown sku {sku[:100]!r}", "sku": sku}, 404
        row = None
        if item is None:  # in the catalog only: its attributes alone
            row = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        elif self.datastore is not None:
            row = self._neighbors(tenant, model, [item])(item)
        why = None
        if content is not None and content.is_cold(item):
            # A model item's blended row is in the image (memory backend): read it.
            served = None if row is not None or item is None else content.served_row(item)
            if served is None:
                cooc = model.snapshot.neighbors(item) if row is None else row
                served = content.blended_row(sku, item, cooc)
            cols, sims, reasons = served
            row, why = (cols, sims), dict(zip(cols.tolist(), reasons, strict=True))
        similar = model.recommender.similar(-1 if item is None else item, n, excluded, allowed,
                                            row)  # fmt: skip
        out = self._entries(model, [(j, s, None) for j, s in similar])
        if why is not None:
            for entry, (j, _) in zip(out, similar, strict=True):
                entry["reason"] = why[j]
        return {"sku": sku, "items": out, "model_version": model.version}, 200

    def _bought_together(self, params: Params) -> Response:
        """The basket's items scored over the bought-together model by the one
        recommender (weight 1 each); the fallback when they have no neighbors there or
        the model was published without one. Both serving backends read its lists from
        the snapshot (the Datastore holds the related-items lists only)."""
        n = parse_n(params, self.max_n)
        skus = parse_repeated(params, "sku", self.max_skus)
        _, model = self._model(params)
        index = model.sku_index
        known = [(i, sku) for sku in dict.fromkeys(skus) if (i := index.get(sku)) is not None]
        items = [i for i, _ in known]
        allowed = self._filters(params, model, items)
        excluded = self._excluded(params, model)
        category = parse_text(params, "category")
        recommender = model.bought_together
        if recommender is None:  # a model published before bought-together existed
            popular = model.recommender.most_popular(n, [*excluded, *items], allowed, items,
                                                     category)  # fmt: skip
            out = self._entries(model, [(j, s, []) for j, s in popular])
            return {"items": out, "model_version": model.version, "fallback": True}, 200
        rec = recommender.recommend(
            Query.from_pairs((i, 1.0) for i in items), n, exclude=excluded, allowed=allowed,
            category=category, labels=[sku for _, sku in known], because_keys=BECAUSE_KEYS,
        )  # fmt: skip
        out = self._entries(model, rec.ranked)
        return {"items": out, "model_version": model.version, "fallback": rec.fallback}, 200

    def _trending(self, params: Params) -> Response:
        n = parse_n(params, self.max_n)
        _, model = self._model(params)
        allowed = self._filters(params, model, [])
        trending = model.recommender.trending(n, self._excluded(params, model), allowed)
        out = self._entries(model, [(j, s, None) for j, s in trending])
        return {"items": out, "model_version": model.version}, 200

    def _healthz(self, params: Params) -> Response:
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
        holder = self.holder
        model = holder.current
        if model is not None:
            return {"status": "ok", "model_version": model.version}, 200
        if holder.published is False:
            return {"status": "no model published yet", "model_version": None}, 200
        return {"status": "loading", "error": "the model is not loaded yet"}, 503

    def _make_recommendation(self, params: Params) -> Response:
        """The original service's endpoint: input items kept, no fallback, ``result``."""
        n = parse_n(params, self.max_n)
        pairs = parse_sku_lists(params, self.max_skus)
        tenant, model = self._model(params)
        query, _, _ = self._query(model, pairs)
        if not len(query):
            return {"result": []}, 200
        scorer, rows = self._scorer(tenant, model, query)
        rec = model.recommender.recommend(
            query, n, exclude_query=False, because_k=0, fallback=False, scorer=scorer, rows=rows
        )
        skus = model.snapshot.skus
        return {"result": [{"item": skus[j], "score": s} for j, s, _ in rec.ranked]}, 200

    def _openapi(self, params: Params) -> Response:
        if self._openapi_doc is None:
            from simrec.serving.openapi import openapi_document

            self._openapi_doc = openapi_document(self.max_n, self.max_skus, self.tenants)
        return self._openapi_doc, 200
