"""Adapters behind small ports; the implementation is chosen here, from the settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from simrec.config import Settings


@dataclass(frozen=True)
class Adapters:
    warehouse: Any
    spark: Any
    beam: Any


def build_adapters(settings: Settings) -> Adapters:
    """The one place that picks local or Google Cloud implementations.

    Locally, job logs go to ``<data root>/_logs/`` (as Dataproc keeps driver output in
    its bucket).
    """
    if settings.backend == "gcp":
        from simrec.adapters import gcp

        return gcp.build(settings)
    from simrec.adapters.local_launchers import LocalBeamLauncher, LocalSparkLauncher
    from simrec.adapters.warehouse_local import DuckDBWarehouse

    log_dir = os.path.join(settings.data_uri, "_logs")
    return Adapters(
        warehouse=DuckDBWarehouse(rules=settings.export_rules),
        spark=LocalSparkLauncher(settings, log_dir),
        beam=LocalBeamLauncher(settings, log_dir),
    )
