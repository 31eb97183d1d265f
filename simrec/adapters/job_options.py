"""The one translation of the settings into each heavy job's options.

Both launchers of a job use the same function: the local one turns the options into the
job's command line, the cloud one into its launch request (Flex Template parameters and
launch environment; Dataproc workflow template parameters). So a setting reaches the job
the same way on both, and tests/cloud/test_job_options.py checks every parameter the Flex
Template metadata and the Dataproc template declare against these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simrec.config import Settings
from simrec.deploy_contract import DATAFLOW_STAGING_DIR, DATAFLOW_TEMP_DIR

#: Load pipeline options (= Flex Template parameters) that come from the run itself.
LOAD_RUN_PARAMETERS = ("similarities", "models_root", "tenant", "model_version")
#: Load pipeline option -> the setting it comes from.
LOAD_SETTING_PARAMETERS = {
    "datastore_project": "datastore_project",
    "datastore_namespace": "datastore_namespace",
    "catalog": "catalog_uri",
}
#: Load pipeline options no setting feeds: the pipeline's own default applies.
LOAD_DEFAULTED_PARAMETERS = {
    "datastore_rampup": "auto: ramp-up on against Datastore, off against the emulator",
}
#: Dataflow launch environment field (``FlexTemplateRuntimeEnvironment``) -> its setting.
LOAD_ENVIRONMENT_SETTINGS = {
    "service_account_email": "dataflow_service_account",
    "max_workers": "dataflow_max_workers",
    "machine_type": "dataflow_machine_type",
    "network": "dataflow_network",
    "subnetwork": "dataflow_subnetwork",
}
#: Labels of every load job (Dataflow label keys/values: lowercase, digits, ``_-``).
LOAD_LABELS = {"simrec-stage": "load"}

#: Dataproc workflow template parameter -> the Spark job flag whose value it replaces.
SPARK_TEMPLATE_PARAMETERS = {"EXPORT_MANIFEST": "--export-manifest", "OUTPUT": "--output"}


@dataclass(frozen=True)
class LoadJobOptions:
    """``parameters``: options of ``beam/load_pipeline.py`` (no empty ones: Dataflow passes
    every given parameter as a flag). ``environment``: the Dataflow launch environment
    (field names of ``FlexTemplateRuntimeEnvironment``); the local runner ignores it."""

    parameters: dict[str, str]
    environment: dict[str, Any] = field(default_factory=dict)

    def argv(self) -> list[str]:
        return [arg for name, value in self.parameters.items() for arg in (f"--{name}", value)]


@dataclass(frozen=True)
class SparkJobOptions:
    """``args``: flags of ``spark/dimsum_job.py`` with their values, in order.
    ``local_master``: the Spark master of a local run (on Dataproc the cluster's YARN)."""

    args: dict[str, str]
    local_master: str = "local[*]"

    def argv(self) -> list[str]:
        return [arg for flag, value in self.args.items() for arg in (flag, value)]

    def template_parameters(self) -> dict[str, str]:
        """The Dataproc workflow template's parameters (each replaces one flag's value)."""
        return {name: self.args[flag] for name, flag in SPARK_TEMPLATE_PARAMETERS.items()}


def load_job_options(
    settings: Settings,
    *,
    similarities_uri: str,
    models_root: str,
    tenant: str,
    model_version: str,
) -> LoadJobOptions:
    run = dict(zip(LOAD_RUN_PARAMETERS, (similarities_uri, models_root, tenant, model_version),
                   strict=True))  # fmt: skip
    from_settings = {opt: str(getattr(settings, name)) for opt, name in
                     LOAD_SETTING_PARAMETERS.items()}  # fmt: skip
    if not settings.datastore_project:  # a namespace alone means nothing to the load
        from_settings["datastore_namespace"] = ""
    staging = settings.staging_uri.rstrip("/")
    environment: dict[str, Any] = {
        env_field: getattr(settings, name) for env_field, name in LOAD_ENVIRONMENT_SETTINGS.items()
    }
    environment |= {
        # The staging bucket's lifecycle rules expire these folders (deploy_contract).
        "temp_location": f"{staging}/{DATAFLOW_TEMP_DIR}" if staging else "",
        "staging_location": f"{staging}/{DATAFLOW_STAGING_DIR}" if staging else "",
        "additional_user_labels": dict(LOAD_LABELS),
    }
    return LoadJobOptions(
        parameters={k: v for k, v in (run | from_settings).items() if v},
        environment={k: v for k, v in environment.items() if v not in ("", None, {})},
    )


def spark_job_options(
    settings: Settings, *, export_manifest_uri: str, output_uri: str
) -> SparkJobOptions:
    """Every run parameter reaches the Spark job through its export manifest; the flags
    name the run's manifest and output folder."""
    return SparkJobOptions(
        args={"--export-manifest": export_manifest_uri, "--output": output_uri},
        local_master=settings.spark_master,
    )
