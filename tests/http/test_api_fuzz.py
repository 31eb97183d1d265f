"""Property-based fuzz of the HTTP API from its own OpenAPI description (schemathesis).

Every operation in ``/openapi.json`` is called with generated parameters (bounded
examples) through the real WSGI app over a model with a catalog; no response may be a
5xx or disagree with the document (status code, content type, body schema).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from simrec import publishing
from simrec.config import Settings
from simrec.core.snapshot import ModelSnapshot
from simrec.serving import api
from simrec.serving.api import ServingApp
from simrec.serving.parameters import FILTERS
from tests.shops import snapshot_from_rows

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz_model() -> ModelSnapshot:
    # Short skus that generated strings hit now and then ("0", "a", ...).
    skus = sorted(["0", "1", "a", "b", "c", "x", "\u00e9", "A"])
    rng = np.random.default_rng(0)
    n = len(skus)
    rows = {}
    for i in range(n):
        others = [j for j in range(n) if j != i][: int(rng.integers(0, 4))]
        draws = sorted(((float(np.float32(rng.random())), j) for j in others), key=lambda t: -t[0])
        rows[i] = [(j, s) for s, j in draws]
    snap = snapshot_from_rows(
        skus,
        rows,
        np.arange(n, dtype=np.float64),
        {"version": "fuzz-v1"},
        trending=np.array([3, 0, 5, 6]),  # /trending answers items
        trending_scores=np.array([2.0, 1.5, 1.5, 0.5]),
        catalog={
            "sku": skus,
            "category": ["a", "0", None, "a", "b", "0", "a", "b"],
            "in_stock": [True, False] * 4,
            "price": [1.0, 2.0, None, 3.5, 1.5, 10.0, 2.5, 0.0],  # price_within's column
            "note": ["x"] * n,
        },
    )
    # /bought-together's second neighbor table: the same lists, for the fuzz.
    return dataclasses.replace(
        snap, bt_indptr=snap.indptr, bt_indices=snap.indices, bt_scores=snap.scores,
        bt_users=snap.users,
    )  # fmt: skip


@pytest.fixture
def api_schema(tmp_path: Path):
    api.HOLDERS.clear()
    root = str(tmp_path / "models")
    publishing.write_snapshot(root, "default", fuzz_model())
    app = ServingApp(Settings(models_uri=root, tenant="default", serving_tenants="other"))
    assert app.holder.get() is not None
    yield schemathesis.openapi.from_wsgi("/openapi.json", app)
    api.HOLDERS.clear()


PATHS = list(api.ENDPOINTS)  # the app's routes: the document must list each


# schemathesis' own pytest plugin (``from_fixture``) does not run on pytest 9, so each
# operation's hypothesis strategy is driven here directly.
@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path", PATHS)
def test_api_conforms_to_its_openapi_document(api_schema, path: str, mode: str) -> None:
    """Valid parameters (positive) and invalid ones (negative: wrong types, out of range,
    missing required): never a 5xx, always the documented status and body."""
    if mode == "negative" and path in ("/openapi.json", "/startupz"):
        pytest.skip("no parameters to get wrong")
    operation = api_schema[path]["GET"]
    calls = []
    answered: set[str] = set()  # parameters of the 200 answers

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    def run(case) -> None:
        response = case.call_and_validate(checks=CHECKS)
        calls.append(response.status_code)
        if response.status_code == 200:
            answered.update(case.query or {})

    run()
    assert calls and all(status < 500 for status in calls)
    if mode == "positive" and path not in ("/openapi.json", "/similar"):
        assert 200 in calls  # the fuzz reached the happy path, not only errors
    if mode == "positive" and path == "/recommendations":
        assert set(FILTERS) <= answered  # every filter, the current-item ones too
    # (/similar: a generated sku rarely exists; test_serving_features covers its 200s)
    if mode == "negative" and path not in ("/healthz",):
        assert 400 in calls  # and the validation


def test_the_document_lists_exactly_these_paths(api_schema) -> None:
    operations = {op.ok().path for op in api_schema.get_all_operations()}
    assert set(PATHS) - {"/openapi.json"} <= operations <= set(PATHS)
