"""The endpoint's query parameters: each declared once, parsed and documented from here.

``PARAMS`` declares every parameter (its kind, its description) and ``ENDPOINT_PARAMS``
which endpoint takes which; the parsers below enforce the kinds and
``simrec.serving.openapi`` writes the same declarations and limits into the OpenAPI
document at ``/openapi.json``, the reference for clients. A violation is a
``BadRequest``: 400 ``{"error", "field"}`` naming the parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from simrec.core import events
from simrec.core.actions import Action

Response = tuple[dict[str, Any], int]
Params = dict[str, list[str]]

DEFAULT_N = 10
MAX_SKU_LENGTH = events.MAX_SKU_LENGTH  # one limit: export rejects longer skus
QUERY_OVERHEAD_BYTES = 4_096  # parameter names, n, flags, category, tenant, exclude
MAX_TENANT_LENGTH = 64
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?")

Kind = Literal["skus", "sku", "n", "flag", "text", "factor", "tenant"]


@dataclass(frozen=True)
class Param:
    """One query parameter. ``kind``: ``skus`` a comma-separated sku list (repeatable);
    ``sku`` one sku; ``n`` an integer 1..max_n; ``flag`` a boolean (``BOOLEANS``);
    ``text`` a non-empty string of at most ``MAX_SKU_LENGTH``; ``factor`` a decimal
    number >= 1; ``tenant`` a shop name."""

    name: str
    kind: Kind
    description: str
    required: bool = False


SKU_LISTS: tuple[tuple[str, str], ...] = (
    ("browsed", Action.BROWSED.value),
    ("basket", Action.BASKET.value),
    ("purchased", Action.PURCHASE.value),
)
PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param("browsed", "skus", "Comma-separated skus the shopper looked at."),
        Param("basket", "skus", "Comma-separated skus the shopper put in the basket."),
        Param("purchased", "skus", "Comma-separated skus the shopper bought."),
        Param("sku", "sku", "The item (/bought-together: the basket's items, sku repeated).",
              required=True),  # fmt: skip
        Param("n", "n", "How many items to return."),
        Param("exclude_seen", "flag", "Leave the input items out (default true)."),
        # The filters: on the catalog, and on the current (input) items' attributes.
        Param("exclude", "skus", "Comma-separated skus never returned."),
        Param("in_stock_only", "flag", "Only items the catalog lists as in stock."),
        Param("category", "text", "Only items of this catalog category."),
        Param("same_category", "flag",
              "Only items of the same catalog category as an input item."),  # fmt: skip
        Param("price_within", "factor",
              "Only items whose catalog price is within this factor of an input item's "
              "(F: from price/F to price*F)."),  # fmt: skip
        Param("tenant", "tenant", "The shop whose model answers."),
    )
}
FILTERS = ("exclude", "in_stock_only", "category", "same_category", "price_within")
CATALOG_FILTERS = ("category", "in_stock_only", "same_category", "price_within")
ENDPOINT_PARAMS: dict[str, tuple[str, ...]] = {
    "/recommendations": ("browsed", "basket", "purchased", "n", "exclude_seen", *FILTERS,
                         "tenant"),  # fmt: skip
    "/similar": ("sku", "n", *FILTERS, "tenant"),
    "/bought-together": ("sku", "n", *FILTERS, "tenant"),
    "/trending": ("n", "exclude", "in_stock_only", "category", "tenant"),
    "/healthz": ("tenant",),
    "/startupz": (),
    "/make_recommendation": ("browsed", "basket", "purchased", "n", "tenant"),
    "/openapi.json": (),
}
RECOMMEND_PARAMS = ENDPOINT_PARAMS["/recommendations"]
#: Parameters an endpoint takes repeated (``sku=X&sku=Y``), each value one entry, at
#: most ``max_skus`` of them (``parse_repeated``; OpenAPI: an exploded array).
REPEATED: dict[str, tuple[str, ...]] = {"/bought-together": ("sku",)}
# Unknown names are rejected (a typo such as ``purchase=`` would silently give fallback
# results) except here: the original service's endpoint ignored them, and the document.
LENIENT = ("/make_recommendation", "/openapi.json")


class BadRequest(Exception):
    """A parameter is wrong: answered as 400 ``{"error": message, "field": field}``."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def response(self) -> Response:
        return {"error": self.message, "field": self.field}, self.status


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
        return BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise BadRequest(name, f"{name} must be true or false, got {raw[:40]!r}") from None


def parse_factor(params: Params, name: str) -> float | None:
    """A plain decimal number >= 1 (``1.5``, ``2``, ``1e1``), or None when absent."""
    raw = single(params, name)
    if raw is None:
        return None
    text = raw.strip()
    value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not 1.0 <= value < math.inf:
        raise BadRequest(name, f"{name} must be a number >= 1, got {raw[:40]!r}")
    return value


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


def parse_repeated(params: Params, name: str, max_skus: int) -> list[str]:
    """A :data:`REPEATED` sku parameter: each value one sku (stripped, non-empty, at
    most ``MAX_SKU_LENGTH``), at least one, at most ``max_skus``, in the order given."""
    values = [v.strip() for v in params.get(name, ())]
    if not values or not all(values):
        raise BadRequest(name, f"give the items as {name}=<sku>, repeated for several")
    if len(values) > max_skus:
        raise BadRequest(name, f"too many skus: more than {max_skus} in {name}")
    if any(len(v) > MAX_SKU_LENGTH for v in values):
        raise BadRequest(name, f"a sku in {name} is longer than {MAX_SKU_LENGTH}")
    return values


def parse_sku(params: Params) -> str:
    sku = (single(params, "sku") or "").strip()
    if not sku:
        raise BadRequest("sku", "give the item as sku=<sku>")
    if len(sku) > MAX_SKU_LENGTH:
        raise BadRequest("sku", f"sku is longer than {MAX_SKU_LENGTH} characters")
    return sku
