"""Google Cloud adapters: BigQuery export, Dataproc workflow, Dataflow Flex Template.

Each client is created on first use from :class:`simrec.config.Settings` (or injected,
e.g. a GAPIC client over a loopback channel in tests), so building the adapters for a
handler that ignores its event costs no client set-up and needs no credentials.
"""

from __future__ import annotations

from simrec.adapters import Adapters
from simrec.adapters.gcp.bigquery import BigQueryWarehouse
from simrec.adapters.gcp.dataflow import FlexTemplateLauncher
from simrec.adapters.gcp.dataproc import DataprocWorkflowLauncher
from simrec.config import Settings

__all__ = ["BigQueryWarehouse", "DataprocWorkflowLauncher", "FlexTemplateLauncher", "build"]


def build(settings: Settings) -> Adapters:
    """The Google Cloud implementations of the three ports, configured from ``settings``."""
    return Adapters(
        warehouse=BigQueryWarehouse.from_settings(settings),
        spark=DataprocWorkflowLauncher.from_settings(settings),
        beam=FlexTemplateLauncher.from_settings(settings),
    )
