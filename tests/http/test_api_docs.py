"""The API is documented once: the OpenAPI document, generated from the parser's own
declarations; the README's table and the app's routes and checks derive from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simrec.config import Settings
from simrec.serving import api, parameters
from simrec.serving.api import ServingApp
from simrec.serving.openapi import openapi_document, readme_table

README = Path(__file__).resolve().parents[2] / "README.md"


def document() -> dict:
    s = Settings()
    return openapi_document(s.max_n, s.max_skus_per_request, [s.tenant])


def test_readme_api_table_is_the_generated_one() -> None:
    text = README.read_text()
    found = re.search(r"<!-- api-table:[^>]*-->\n(.*?)\n<!-- /api-table -->", text, re.S)
    assert found, "README.md lost its generated API table markers"
    assert found.group(1) == readme_table(document()), "run: python tools/api_table.py"


def test_document_lists_each_endpoint_with_the_parameters_the_parser_takes() -> None:
    doc = document()
    assert set(doc["paths"]) == set(api.ENDPOINTS) >= set(parameters.ENDPOINT_PARAMS)
    assert tuple(ServingApp(Settings(models_uri="unused")).routes) == api.ENDPOINTS
    for path, names in parameters.ENDPOINT_PARAMS.items():
        documented = [p["name"] for p in doc["paths"][path]["get"].get("parameters", [])]
        assert documented == list(names), path
    declared = {p.name for p in parameters.PARAMS.values()}
    used = {n for names in parameters.ENDPOINT_PARAMS.values() for n in names}
    assert declared == used  # no declaration without an endpoint
    for name in parameters.FILTERS:  # one list of filters, on both item endpoints
        assert name in parameters.ENDPOINT_PARAMS["/recommendations"]
        assert name in parameters.ENDPOINT_PARAMS["/similar"]


def test_document_limits_are_the_settings() -> None:
    doc = openapi_document(7, 11, ["b", "a"])
    params = {p["name"]: p for p in doc["paths"]["/recommendations"]["get"]["parameters"]}
    assert params["n"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 7, "default": 7}
    assert params["browsed"]["schema"]["maxLength"] == parameters.max_query_bytes(11)
    assert params["exclude_seen"]["schema"]["enum"] == list(parameters.BOOLEANS)
    assert params["price_within"]["schema"] == {"type": "number", "minimum": 1}
    assert "At most 11 skus" in doc["info"]["description"]
    assert "`a`, `b`" in doc["info"]["description"]


@pytest.mark.parametrize("kind", ["skus", "sku", "n", "flag", "text", "factor", "tenant"])
def test_every_parameter_kind_has_a_schema(kind: str) -> None:
    from simrec.serving.openapi import _schema

    assert _schema(parameters.Param("x", kind, "x"), 10, 10)["type"]
