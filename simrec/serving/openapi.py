"""The OpenAPI 3 document of the endpoint, served at ``/openapi.json``: the API reference.

Generated from the declarations the parser enforces (``simrec.serving.parameters``:
every parameter, its kind, which endpoint takes it, the limits) and the answer shapes
below, so the rules are written once. ``readme_table`` renders the README's API table
from it (``tests/http/test_api_docs.py`` keeps the two equal) and a property-based fuzz
(``tests/http/test_api_fuzz.py``, schemathesis) checks the running app against it: every
documented parameter, status and body shape, so a client generator or a gateway can rely
on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simrec.core import content
from simrec.core import params as model_params
from simrec.core.recommender import BECAUSE_K, SHARE_DIGITS
from simrec.serving import access
from simrec.serving.json_schemas import catalog_item, obj, response
from simrec.serving.parameters import (
    BOOLEANS,
    CATALOG_FILTERS,
    DEFAULT_N,
    ENDPOINT_PARAMS,
    LENIENT,
    MAX_SKU_LENGTH,
    MAX_TENANT_LENGTH,
    PARAMS,
    REPEATED,
    Param,
    max_query_bytes,
)
from simrec.serving.ui import endpoints as ui_endpoints

SUMMARIES = {
    "/recommendations": "Items for a shopper's recent items, with why.",
    "/similar": "The nearest neighbors of one item.",
    "/bought-together": "Items bought together with the basket's items.",
    "/trending": "Items whose events grew most in the last days.",
    "/healthz": "Whether a model is loaded, and which.",
    "/startupz": "The startup probe: the model is loaded, or none is published.",
    "/make_recommendation": "The original service's endpoint (input items kept).",
    "/openapi.json": "This document.",
}

RULES = """\
Parameters: sku lists are comma-separated; each entry is stripped of surrounding spaces,
empty entries are ignored, and a list parameter may be repeated (`browsed=a&browsed=b`);
other parameters may be given once. At most {max_skus} skus in browsed, basket and
purchased together (duplicates count), at most as many in `exclude`; a sku is at most
{max_sku} characters; the query string at most {max_query} bytes (`field`: `query`).
Booleans: `true/false`, `1/0`, `yes/no`, case-insensitive. The catalog filters
({catalog_filters}) need a model published with an item catalog; `price_within` its
numeric `price` column. Unknown parameter names are a 400, except on
{lenient}. Any violation: 400 `{{"error", "field"}}` naming the parameter.

Scoring: `score(j) = sum over input items i of weight(action of i) x sim(i, j)`; an item
given under several actions gets the sum of their weights; an input sku only the catalog
lists (a new item) scores with its neighbors from its attributes (as on `/similar`), on
either serving backend; other unknown skus are ignored.
`/recommendations` leaves the input items out unless `exclude_seen=false`, the `exclude`
skus always. `because` names the (up to {because_k}) input items whose terms contributed
most to an item's score, with their share of it ({share_digits} decimals). When nothing
scores it answers popular items with `"fallback": true`: first the most popular of the
input items' categories (and of the `category` filter), then the most popular overall,
filters and exclusions applied, popularity as score. `same_category` keeps items of an
input item's category; `price_within=F` items priced from p/F to p*F for an input item's
price p (items without a price never pass). `/make_recommendation` keeps the input items
and has no fallback (an empty `result`); its error bodies carry `"result": []` too.

Bought together: `/bought-together?sku=X&sku=Y` scores like `/recommendations` over the
second neighbor model (items in the same order, session or day, `SIMREC_BASKET_KEY`),
each given sku with weight 1; the given skus are left out, unknown ones ignored. A model
published before bought-together existed answers the fallback.

Trending: `/trending` ranks the items by the growth of their weighted events in the
last {recent_days} days of the nightly run's window against the days before,
`score = (recent/{recent_days} + {smoothing:g}) / (prior/prior_days + {smoothing:g})` (daily
rates), items with at least {min_support:g} weighted recent events only; the filters and
exclusions apply, and there is no fallback (fewer items when fewer trend). These are the
defaults of the model parameters `trending_recent_days`, `trending_min_support` and
`trending_smoothing` (settings `SIMREC_TRENDING_*`, Terraform `model`).

Tenants: `tenant` selects one of the shops this deployment serves ({tenants}); another
name is a 404 with `field` `tenant`. Until a tenant's model is loaded, and when the
neighbor store fails, its endpoints answer 503. Each answer comes from one model version
and names it.
"""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schema(param: Param, max_n: int, max_skus: int) -> dict[str, Any]:
    """The JSON schema of a parameter's kind (what ``parameters`` parses)."""
    kind = param.kind
    if kind == "skus":
        return {"type": "string", "maxLength": max_query_bytes(max_skus)}
    if kind in ("sku", "text"):
        return {"type": "string", "minLength": 1, "maxLength": MAX_SKU_LENGTH}
    if kind == "n":
        return {"type": "integer", "minimum": 1, "maximum": max_n, "default": min(DEFAULT_N, max_n)}
    if kind == "flag":
        return {"type": "string", "enum": list(BOOLEANS)}
    if kind == "factor":
        return {"type": "number", "minimum": 1}
    if kind == "tenant":
        return {"type": "string", "maxLength": MAX_TENANT_LENGTH}
    raise AssertionError(f"no schema for parameter kind {kind!r}")


def _parameter(
    param: Param, max_n: int, max_skus: int, repeated: bool = False
) -> dict[str, Any]:
    schema = _schema(param, max_n, max_skus)
    if repeated:  # parameters.REPEATED: name=a&name=b
        schema = {"type": "array", "items": schema, "minItems": 1, "maxItems": max_skus}
    out = {
        "name": param.name,
        "in": "query",
        "schema": schema,
        "description": param.description,
    }
    if repeated:
        out.update(style="form", explode=True)
    if param.required:
        out["required"] = True
    return out


def _answers() -> dict[str, dict[str, Any]]:
    """The 200 body of each endpoint."""
    because = {
        "type": "array",
        "maxItems": BECAUSE_K,
        "items": obj(
            {
                "sku": {"type": "string"},
                "share": {"type": "number", "minimum": 0, "maximum": 1},
            }
        ),
    }
    recommended = {
        "allOf": [
            _ref("Item"),
            obj({"because": because}),
        ]
    }
    reasons = [content.REASON_EVENTS, content.REASON_ATTRIBUTES, content.REASON_BOTH]
    similar = {
        "allOf": [
            _ref("Item"),
            {"type": "object", "properties": {"reason": {"enum": reasons}}},
        ]
    }
    ranked = obj(
        {
            "items": {"type": "array", "items": recommended},
            "model_version": {"type": "string"},
            "fallback": {"type": "boolean"},
        }
    )
    return {
        "/recommendations": response(
            ranked, "Ranked items; `fallback` when they are popular items."
        ),
        "/similar": response(
            obj(
                {
                    "sku": {"type": "string"},
                    "items": {"type": "array", "items": similar},
                    "model_version": {"type": "string"},
                }
            ),
            "The item's neighbors, most similar first. An item with few or no events (a "
            "sku only the catalog lists, too) gets neighbors from its attributes blended "
            "with its events (simrec.core.content); each then has a `reason`.",
        ),
        "/bought-together": response(
            ranked,
            "Items most often in the same baskets as the given ones (the second neighbor "
            "model), `score` the summed similarity; `fallback` when they are popular items "
            "(no given sku has bought-together neighbors, or the model has none).",
        ),
        "/trending": response(
            obj(
                {
                    "items": {"type": "array", "items": _ref("Item")},
                    "model_version": {"type": "string"},
                }
            ),
            "Trending items, fastest growing first; `score` is the growth.",
        ),
        "/make_recommendation": response(
            obj(
                {
                    "result": {
                        "type": "array",
                        "items": obj({"item": {"type": "string"}, "score": {"type": "number"}}),
                    }
                }
            ),
            "Ranked items (empty when nothing scores).",
        ),
        "/healthz": response(
            obj(
                {
                    "status": {"const": "ok"},
                    "model_version": {"type": "string"},
                    "items": {"type": "integer", "minimum": 0},
                }
            ),
            "A model is loaded.",
        ),
        "/startupz": response(
            obj(
                {
                    "status": {"type": "string"},
                    "model_version": {"type": ["string", "null"]},
                }
            ),
            "Ready to take traffic.",
        ),
        "/openapi.json": response({"type": "object"}, "The OpenAPI document."),
    }


def openapi_document(max_n: int, max_skus: int, tenants: Iterable[str]) -> dict[str, Any]:
    """The document for an app with these limits."""
    tenants = sorted(tenants)
    errors = {
        "400": response(_ref("Error"), "A parameter is invalid; `field` names it."),
        "404": response(
            _ref("Error"), "Unknown tenant (or, for /similar, a sku no model or catalog lists)."
        ),
        "503": response(_ref("Error"), "No model loaded yet, or the neighbor store failed."),
    }
    answers = _answers()
    paths: dict[str, Any] = {}
    for path, names in ENDPOINT_PARAMS.items():
        operation: dict[str, Any] = {
            "operationId": path.strip("/").removesuffix(".json"),
            "summary": SUMMARIES[path],
        }
        if names:
            operation["parameters"] = [
                _parameter(PARAMS[n], max_n, max_skus, n in REPEATED.get(path, ()))
                for n in names
            ]
        operation["responses"] = {"200": answers[path]}
        if path != "/openapi.json":
            operation["responses"].update(errors)
        paths[path] = {"get": operation}
    # The /ui page's endpoints describe themselves, with the shared n, tenant and errors.
    shared = [_parameter(PARAMS[name], max_n, max_skus) for name in ("n", "tenant")]
    paths.update(ui_endpoints.openapi_paths(*shared, errors))
    description = RULES.format(
        recent_days=model_params.DEFAULTS.trending_recent_days,
        smoothing=model_params.DEFAULTS.trending_smoothing,
        min_support=model_params.DEFAULTS.trending_min_support,
        max_skus=max_skus,
        max_sku=MAX_SKU_LENGTH,
        max_query=max_query_bytes(max_skus),
        catalog_filters=", ".join(f"`{f}`" for f in CATALOG_FILTERS),
        lenient=" and ".join(f"`{p}`" for p in LENIENT),
        because_k=BECAUSE_K,
        share_digits=SHARE_DIGITS,
        tenants=", ".join(f"`{t}`" for t in tenants),
    )
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "simrec recommend",
            "version": "1",
            "description": "Item-to-item recommendations from the latest model.\n\n"
            + description,
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Item": catalog_item({"sku": {"type": "string"}, "score": {"type": "number"}}),
                "Error": obj(
                    {
                        "error": {"type": "string"},
                        "field": {"type": "string"},
                        "status": {"type": "string"},
                    },
                    "field",
                    "status",
                ),
            }
        },
    }
    return access.describe_public_mode(doc)


def readme_table(document: dict[str, Any]) -> str:
    """The README's API table: each endpoint, its parameters and what it answers
    (``python tools/api_table.py`` prints it for the default settings)."""
    rows = ["| request | parameters | answer |", "|---|---|---|"]
    for path, item in document["paths"].items():
        op = item["get"]
        params = ", ".join(
            f"`{p['name']}`" + (" (required)" if p.get("required") else "")
            for p in op.get("parameters", [])
        )
        ok = op["responses"]["200"]
        schema = ok["content"]["application/json"]["schema"]
        keys = ", ".join(f'"{k}"' for k in schema.get("required", []))
        answer = f"`{{{keys}}}`: {op['summary']}" if keys else op["summary"]
        rows.append(f"| `GET {path}` | {params or '-'} | {answer} |")
    return "\n".join(rows)
