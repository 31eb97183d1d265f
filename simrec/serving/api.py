"""The recommend endpoint's logic: parse and validate a request, score, answer JSON.

Framework-light: ``ServingApp.handle`` takes a flask/werkzeug ``Request`` and returns
``(body dict, status)``; the endpoint methods take the query parameters as a mapping (a
werkzeug ``MultiDict`` or a plain ``dict`` of strings), which is how the CLI calls them.

Endpoints (GET or HEAD only; other methods -> 405, other paths -> 404, all JSON):

* ``/recommendations?browsed=a,b&basket=c&purchased=d&n=10[&exclude_seen=false]``
  -> ``{"items": [{"sku", "score"}], "model_version", "fallback"}``.
* ``/similar?sku=X&n=10`` -> ``{"sku", "items": [{"sku", "score"}], "model_version"}``.
* ``/healthz`` -> ``{"status": "ok", "model_version", "items"}``.
* ``/make_recommendation?browsed=..&basket=..&purchased=..&n=..`` -> ``{"result":
  [{"item", "score"}]}``: the original service's contract, so its clients switch unchanged.

Parameter rules (a violation -> 400 ``{"error", "field"}``):

* sku lists are comma-separated; each entry is stripped of surrounding spaces and empty
  entries are ignored (``a,,b`` and a trailing comma are fine). A list parameter may be
  repeated (``browsed=a&browsed=b``); single-valued ones (``n``, ``sku``,
  ``exclude_seen``) may not.
* At most ``max_skus_per_request`` sku entries in total (duplicates count); ``field``
  names the parameter at which the limit is crossed.
* ``n``: a plain decimal integer in 1..``max_n``; default 10.
* ``exclude_seen``: ``true/false`` (also ``1/0``, ``yes/no``), case-insensitive.
* Unknown parameter names are rejected on the new endpoints (a typo such as
  ``purchase=`` would otherwise silently give fallback results); ``/make_recommendation``
  ignores them, as the original service did.

Scoring: an item's weight is ``ActionWeights.of(action)``, summed over the lists it is
in (see ``simrec.core.scoring``). Unknown skus are ignored. ``/recommendations`` leaves
the input items out unless ``exclude_seen=false`` and, when nothing scores, answers the
most popular items (popularity as score, input items left out when ``exclude_seen``) with
``"fallback": true``. ``/make_recommendation`` keeps input items and has no fallback
(an empty ``result``), like the original service; its error bodies carry ``"result": []``
too. Before the first model exists every endpoint answers 503 ``{"error": ...}``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from simrec.config import Settings
from simrec.core.actions import Action
from simrec.core.scoring import Query, most_popular, score, top_similar
from simrec.serving.model_holder import LoadedModel, ModelHolder

Response = tuple[dict[str, Any], int]
Params = dict[str, list[str]]

DEFAULT_N = 10
SKU_LISTS: tuple[tuple[str, str], ...] = (
    ("browsed", Action.BROWSED.value),
    ("basket", Action.BASKET.value),
    ("purchased", Action.PURCHASE.value),
)
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_DIGITS = re.compile(r"[0-9]+")


class BadRequest(Exception):
    """A parameter is wrong: answered as 400 ``{"error": message, "field": field}``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def response(self) -> Response:
        return {"error": self.message, "field": self.field}, 400


# --- model holders, one per (models root, tenant, refresh) ------------------------------
_holders: dict[tuple[str, str, float], ModelHolder] = {}
_holders_lock = threading.Lock()


def get_holder(models_root: str, tenant: str, refresh_seconds: float) -> ModelHolder:
    """The process-wide holder of a tenant's model (created on first use, then shared)."""
    key = (models_root, tenant, float(refresh_seconds))
    with _holders_lock:
        holder = _holders.get(key)
        if holder is None:
            holder = _holders[key] = ModelHolder(models_root, tenant, refresh_seconds)
        return holder


def clear_holders() -> None:
    """Forget every holder (tests point the endpoint at fresh folders)."""
    with _holders_lock:
        _holders.clear()


# --- parameter parsing ------------------------------------------------------------------
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
    values = params.get(name, [])
    if len(values) > 1:
        raise BadRequest(name, f"parameter {name!r} given {len(values)} times; give it once")
    return values[0] if values else None


def parse_n(params: Params, max_n: int) -> int:
    raw = single(params, "n")
    if raw is None:
        return min(DEFAULT_N, max_n)
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        raise BadRequest("n", f"n must be an integer in 1..{max_n}, got {raw!r}")
    value = int(text) if len(text) <= 12 else max_n + 1
    if not 1 <= value <= max_n:
        raise BadRequest("n", f"n must be an integer in 1..{max_n}, got {raw!r}")
    return value


def parse_bool(params: Params, name: str, default: bool) -> bool:
    raw = single(params, name)
    if raw is None:
        return default
    try:
        return _BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise BadRequest(name, f"{name} must be true or false, got {raw!r}") from None


def split_skus(values: list[str]) -> list[str]:
    """Comma-separated entries, stripped; empty entries ignored."""
    return [s.strip() for value in values for s in value.split(",") if s.strip()]


def parse_sku_lists(params: Params, max_skus: int) -> list[tuple[str, str]]:
    """``(sku, action)`` pairs in list order (browsed, basket, purchased), limit checked."""
    pairs: list[tuple[str, str]] = []
    for name, action in SKU_LISTS:
        pairs += [(sku, action) for sku in split_skus(params.get(name, []))]
        if len(pairs) > max_skus:
            raise BadRequest(
                name, f"too many skus: more than {max_skus} in browsed, basket and purchased"
            )
    return pairs


# --- the app --------------------------------------------------------------------------
class ServingApp:
    """The endpoints over one tenant's model; see the module docstring."""

    def __init__(self, settings: Settings | None = None, holder: ModelHolder | None = None):
        self.settings = settings or Settings()
        self.holder = holder or get_holder(
            self.settings.models_root, self.settings.tenant, self.settings.model_refresh_seconds
        )
        self.routes: dict[str, Callable[[Mapping[str, Any]], Response]] = {
            "/recommendations": self.recommendations,
            "/similar": self.similar,
            "/healthz": lambda args: self.healthz(),
            "/make_recommendation": self.make_recommendation,
        }

    def handle(self, request: Any) -> Response:
        """Route a flask/werkzeug request by path and method."""
        path = request.path.rstrip("/") or "/"
        endpoint = self.routes.get(path)
        if endpoint is None:
            return {
                "error": f"no endpoint {path!r}; use one of {', '.join(sorted(self.routes))}"
            }, 404
        if request.method not in ("GET", "HEAD"):
            return {"error": f"method {request.method} not allowed on {path}; use GET"}, 405
        return endpoint(request.args)

    def _model(self) -> LoadedModel | None:
        return self.holder.get()

    def _unavailable(self) -> Response:
        return {"error": f"no model loaded yet for tenant {self.settings.tenant!r}"}, 503

    # --- endpoints -------------------------------------------------------------------
    def recommendations(self, args: Mapping[str, Any]) -> Response:
        params = normalise_params(args)
        try:
            check_names(params, ("browsed", "basket", "purchased", "n", "exclude_seen"))
            n = parse_n(params, self.settings.max_n)
            exclude_seen = parse_bool(params, "exclude_seen", default=True)
            pairs = parse_sku_lists(params, self.settings.max_skus_per_request)
        except BadRequest as exc:
            return exc.response()
        model = self._model()
        if model is None:
            return self._unavailable()
        query = self._query(model, pairs)
        exclude = query.items.tolist() if exclude_seen else []
        scored = score(model.snapshot, query, n, exclude)
        fallback = not scored
        if fallback:
            scored = most_popular(model.popular, model.snapshot.popularity, n, exclude)
        skus = model.snapshot.skus
        return {
            "items": [{"sku": skus[j], "score": float(s)} for j, s in scored],
            "model_version": model.version,
            "fallback": fallback,
        }, 200

    def similar(self, args: Mapping[str, Any]) -> Response:
        params = normalise_params(args)
        try:
            check_names(params, ("sku", "n"))
            n = parse_n(params, self.settings.max_n)
            sku = (single(params, "sku") or "").strip()
            if not sku:
                raise BadRequest("sku", "give the item as sku=<sku>")
        except BadRequest as exc:
            return exc.response()
        model = self._model()
        if model is None:
            return self._unavailable()
        item = model.sku_index.get(sku)
        if item is None:
            return {"error": f"unknown sku {sku!r}", "sku": sku}, 404
        skus = model.snapshot.skus
        return {
            "sku": sku,
            "items": [
                {"sku": skus[j], "score": float(s)} for j, s in top_similar(model.snapshot, item, n)
            ],
            "model_version": model.version,
        }, 200

    def healthz(self) -> Response:
        model = self._model()
        if model is None:
            body, status = self._unavailable()
            return {"status": "unavailable", **body}, status
        return {"status": "ok", "model_version": model.version, "items": model.n_items}, 200

    def make_recommendation(self, args: Mapping[str, Any]) -> Response:
        """The original service's endpoint: input items kept, no fallback, ``result``."""
        params = normalise_params(args)
        try:
            n = parse_n(params, self.settings.max_n)
            pairs = parse_sku_lists(params, self.settings.max_skus_per_request)
        except BadRequest as exc:
            body, status = exc.response()
            return {"result": [], **body}, status
        model = self._model()
        if model is None:
            body, status = self._unavailable()
            return {"result": [], **body}, status
        scored = score(model.snapshot, self._query(model, pairs), n)
        skus = model.snapshot.skus
        return {"result": [{"item": skus[j], "score": float(s)} for j, s in scored]}, 200

    def _query(self, model: LoadedModel, pairs: list[tuple[str, str]]) -> Query:
        index = model.sku_index
        known = [(index[sku], action) for sku, action in pairs if sku in index]
        return Query.from_actions(known, self.settings.weights)
