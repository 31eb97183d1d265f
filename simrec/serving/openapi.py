"""The OpenAPI 3 description of the endpoint, served at ``/openapi.json``.

Written by hand next to ``simrec.serving.api`` (whose docstring states the same rules)
and checked against the running app by a property-based fuzz (``tests/http/test_api_fuzz.py``,
schemathesis): every documented parameter, status and body shape, so a client generator
or a gateway can rely on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simrec.serving.api import MAX_SKU_LENGTH, max_query_bytes


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


def openapi_document(max_n: int, max_skus: int, tenants: Iterable[str]) -> dict[str, Any]:
    """The document for an app with these limits."""
    max_query = max_query_bytes(max_skus)
    sku_list = {"type": "string", "maxLength": max_query}
    text = {"type": "string", "minLength": 1, "maxLength": MAX_SKU_LENGTH}
    boolean = {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}
    n = _param(
        "n",
        {"type": "integer", "minimum": 1, "maximum": max_n, "default": min(10, max_n)},
        "How many items to return.",
    )
    tenant = _param(
        "tenant",
        {"type": "string", "maxLength": 64},
        f"The shop whose model answers; this deployment serves {sorted(tenants)}.",
    )
    filters = [
        _param(
            "exclude",
            sku_list,
            f"Comma-separated skus never returned (at most {max_skus}).",
            style="form",
            explode=False,
        ),
        _param("in_stock_only", boolean, "Only items the catalog lists as in stock."),
        _param("category", text, "Only items of this catalog category."),
    ]
    lists = [
        _param(name, sku_list, f"Comma-separated skus the shopper {what}.")
        for name, what in (
            ("browsed", "looked at"),
            ("basket", "put in the basket"),
            ("purchased", "bought"),
        )
    ]
    errors = {
        "400": _json(_ref("Error"), "A parameter is invalid; `field` names it."),
        "404": _json(_ref("Error"), "Unknown tenant (or sku, for /similar)."),
        "503": _json(_ref("Error"), "No model loaded yet, or the neighbor store failed."),
    }
    item = {
        "type": "object",
        "required": ["sku", "score"],
        "properties": {
            "sku": {"type": "string"},
            "score": {"type": "number"},
            "category": {"type": ["string", "null"]},
            "in_stock": {"type": "boolean"},
            "attributes": {"type": "object"},
        },
    }
    recommended = {
        "allOf": [
            _ref("Item"),
            {
                "type": "object",
                "required": ["because"],
                "properties": {
                    "because": {
                        "type": "array",
                        "maxItems": 3,
                        "items": {
                            "type": "object",
                            "required": ["sku", "share"],
                            "properties": {
                                "sku": {"type": "string"},
                                "share": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                        },
                    }
                },
            },
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "simrec recommend",
            "version": "1",
            "description": "Item-to-item recommendations from the latest model. Every "
            f"query string is at most {max_query} bytes; browsed, basket and "
            f"purchased hold at most {max_skus} skus together, each at most "
            f"{MAX_SKU_LENGTH} characters.",
        },
        "paths": {
            "/recommendations": {
                "get": {
                    "operationId": "recommendations",
                    "summary": "Items for a shopper's recent items, with why.",
                    "parameters": [
                        *lists,
                        n,
                        _param("exclude_seen", boolean, "Leave the input items out."),
                        *filters,
                        tenant,
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["items", "model_version", "fallback"],
                                "properties": {
                                    "items": {"type": "array", "items": recommended},
                                    "model_version": {"type": "string"},
                                    "fallback": {"type": "boolean"},
                                },
                            },
                            "Ranked items; `fallback` when they are popular items.",
                        ),
                        **errors,
                    },
                }
            },
            "/similar": {
                "get": {
                    "operationId": "similar",
                    "summary": "The nearest neighbors of one item.",
                    "parameters": [
                        _param("sku", text, "The item.", required=True),
                        n,
                        *filters,
                        tenant,
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["sku", "items", "model_version"],
                                "properties": {
                                    "sku": {"type": "string"},
                                    "items": {"type": "array", "items": _ref("Item")},
                                    "model_version": {"type": "string"},
                                },
                            },
                            "The item's neighbors, most similar first.",
                        ),
                        **errors,
                    },
                }
            },
            "/make_recommendation": {
                "get": {
                    "operationId": "make_recommendation",
                    "summary": "The original service's endpoint (input items kept).",
                    "parameters": [*lists, n, tenant],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["result"],
                                "properties": {
                                    "result": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["item", "score"],
                                            "properties": {
                                                "item": {"type": "string"},
                                                "score": {"type": "number"},
                                            },
                                        },
                                    }
                                },
                            },
                            "Ranked items (empty when nothing scores).",
                        ),
                        **errors,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Whether a model is loaded, and which.",
                    "parameters": [tenant],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status", "model_version", "items"],
                                "properties": {
                                    "status": {"const": "ok"},
                                    "model_version": {"type": "string"},
                                    "items": {"type": "integer", "minimum": 0},
                                },
                            },
                            "A model is loaded.",
                        ),
                        **errors,
                    },
                }
            },
            "/startupz": {
                "get": {
                    "operationId": "startupz",
                    "summary": "The startup probe: the model is loaded, or none is published.",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status", "model_version"],
                                "properties": {
                                    "status": {"type": "string"},
                                    "model_version": {"type": ["string", "null"]},
                                },
                            },
                            "Ready to take traffic.",
                        ),
                        **errors,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
                }
            },
        },
        "components": {
            "schemas": {
                "Item": item,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string"},
                        "status": {"type": "string"},
                    },
                },
            }
        },
    }
