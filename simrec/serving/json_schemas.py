"""The JSON Schema shapes the OpenAPI documents repeat (``simrec.serving.openapi`` and
the /ui endpoints' part of it, which openapi imports and so cannot import back)."""

from __future__ import annotations

from typing import Any


def response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI response whose JSON body has ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def obj(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    """A JSON object schema whose ``properties`` are all required but ``optional``."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "properties": properties}


#: What an answered item carries from the catalog (absent without one).
CATALOG_FIELDS: dict[str, Any] = {
    "category": {"type": ["string", "null"]},
    "in_stock": {"type": "boolean"},
    "attributes": {"type": "object"},
}


def catalog_item(properties: dict[str, Any]) -> dict[str, Any]:
    """An item's schema: ``properties`` required, then the optional :data:`CATALOG_FIELDS`."""
    return obj({**properties, **CATALOG_FIELDS}, *CATALOG_FIELDS)
