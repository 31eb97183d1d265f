"""The single-machine engine (NumPy + the compiled kernel) under the engine contract."""

from __future__ import annotations

from typing import Any

from simrec.core.similarity import resolve_params
from simrec.jobs.local_similarity import run_local_similarity
from tests.builders import ExportedShop
from tests.engines.engine_contract import EngineContract


class TestLocalEngine(EngineContract):
    engine = "local"

    def compute(
        self, shop: ExportedShop, output_uri: str, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        params = resolve_params(shop.manifest["params"], overrides)
        return run_local_similarity(shop.manifest_uri, output_uri, params)
