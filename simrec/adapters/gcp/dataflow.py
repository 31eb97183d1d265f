"""Beam launcher on Dataflow: launch the load pipeline's Flex Template for one run.

Idempotency, in order:
1. the model version's ``metadata.json`` exists (it is written last): the run is
   published, nothing is launched (``exists``);
2. an *active* job with the run's job name exists (``JobsV1Beta3.ListJobs``, filter
   ACTIVE, matched by name): a redelivery while the load runs (``exists``);
3. otherwise launch; should Dataflow still answer ``ALREADY_EXISTS`` (a job with that
   name started between 2 and 3), that is ``exists`` too.
A job that failed is neither active nor published, so a rerun launches it again.
"""

from __future__ import annotations

import re
from typing import Any

from simrec import storage
from simrec.adapters.gcp import _endpoints
from simrec.adapters.launch_ports import LaunchResult
from simrec.config import Settings
from simrec.core import layout
from simrec.core.snapshot import METADATA_NAME
from simrec.deploy_contract import DATAFLOW_STAGING_DIR, DATAFLOW_TEMP_DIR

_JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,62}[a-z0-9])?$")


class FlexTemplateLauncher:
    """Beam port on Dataflow Flex Templates (see the module docstring).

    ``flex_client`` / ``jobs_client``: injected ``FlexTemplatesServiceClient`` and
    ``JobsV1Beta3Client``; by default created on first use (``endpoint`` as in
    :mod:`simrec.adapters.gcp._endpoints`).
    """

    def __init__(
        self,
        project: str,
        region: str,
        template_uri: str,
        *,
        service_account: str = "",
        staging_uri: str = "",
        datastore_project: str = "",
        datastore_namespace: str = "",
        endpoint: str = "",
        flex_client: Any = None,
        jobs_client: Any = None,
    ) -> None:
        self.project = project
        self.region = region
        self.template_uri = template_uri
        self.service_account = service_account
        self.staging_uri = staging_uri.rstrip("/")
        self.datastore_project = datastore_project
        self.datastore_namespace = datastore_namespace
        self.endpoint = endpoint
        self._flex = flex_client
        self._jobs = jobs_client

    @classmethod
    def from_settings(cls, settings: Settings) -> FlexTemplateLauncher:
        return cls(
            settings.gcp_project,
            settings.gcp_region,
            settings.flex_template_uri,
            service_account=settings.dataflow_service_account,
            staging_uri=settings.staging_uri,
            datastore_project=settings.datastore_project,
            datastore_namespace=settings.datastore_namespace,
            endpoint=settings.dataflow_endpoint,
        )

    @property
    def flex_client(self) -> Any:
        if self._flex is None:
            from google.cloud import dataflow_v1beta3
            from google.cloud.dataflow_v1beta3.services.flex_templates_service.transports import (
                FlexTemplatesServiceGrpcTransport,
            )

            self._flex = dataflow_v1beta3.FlexTemplatesServiceClient(
                **_endpoints.gapic_kwargs(self.endpoint, FlexTemplatesServiceGrpcTransport)
            )
        return self._flex

    @property
    def jobs_client(self) -> Any:
        if self._jobs is None:
            from google.cloud import dataflow_v1beta3
            from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import (
                JobsV1Beta3GrpcTransport,
            )

            self._jobs = dataflow_v1beta3.JobsV1Beta3Client(
                **_endpoints.gapic_kwargs(self.endpoint, JobsV1Beta3GrpcTransport)
            )
        return self._jobs

    def parameters(
        self, similarities_uri: str, models_root: str, tenant: str, model_version: str
    ) -> dict[str, str]:
        """The pipeline options of ``beam/load_pipeline.py`` for this run (no empty ones:
        Dataflow passes every given parameter as a flag)."""
        params = {
            "similarities": similarities_uri,
            "models_root": models_root,
            "tenant": tenant,
            "model_version": model_version,
            "datastore_project": self.datastore_project,
            "datastore_namespace": self.datastore_namespace,
        }
        return {k: v for k, v in params.items() if v}

    def active_job(self, job_name: str) -> Any | None:
        """The active job named ``job_name``, if any."""
        from google.cloud import dataflow_v1beta3

        request = dataflow_v1beta3.ListJobsRequest(
            project_id=self.project,
            location=self.region,
            filter=dataflow_v1beta3.ListJobsRequest.Filter.ACTIVE,
            name=job_name,
        )
        for job in self.jobs_client.list_jobs(request=request):
            if job.name == job_name:  # the name filter is advisory: check it here
                return job
        return None

    def launch(
        self,
        *,
        similarities_uri: str,
        models_root: str,
        tenant: str,
        model_version: str,
        job_name: str,
    ) -> LaunchResult:
        if not _JOB_NAME.match(job_name):
            raise ValueError(f"invalid Dataflow job name {job_name!r}")
        if not self.project:
            raise ValueError("SIMREC_GCP_PROJECT is required to launch the Dataflow load")
        if not self.template_uri.startswith("gs://"):
            raise ValueError(
                "SIMREC_FLEX_TEMPLATE_URI must be the gs:// path of the load Flex Template, "
                f"got {self.template_uri!r}"
            )
        metadata = layout.join(
            layout.model_version(models_root, tenant, model_version), METADATA_NAME
        )
        if storage.exists(metadata):
            return LaunchResult(
                job_name, "exists", {"model_version": model_version, "published": metadata}
            )
        active = self.active_job(job_name)
        if active is not None:
            return LaunchResult(
                job_name,
                "exists",
                {"model_version": model_version, "job_id": active.id,
                 "job_state": active.current_state.name},
            )  # fmt: skip
        return self._launch(
            job_name, self.parameters(similarities_uri, models_root, tenant, model_version),
            model_version,
        )  # fmt: skip

    def _launch(
        self, job_name: str, parameters: dict[str, str], model_version: str
    ) -> LaunchResult:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import dataflow_v1beta3

        environment = dataflow_v1beta3.FlexTemplateRuntimeEnvironment(
            service_account_email=self.service_account,
            temp_location=f"{self.staging_uri}/{DATAFLOW_TEMP_DIR}" if self.staging_uri else "",
            staging_location=(
                f"{self.staging_uri}/{DATAFLOW_STAGING_DIR}" if self.staging_uri else ""
            ),
            additional_user_labels={"simrec-stage": "load"},
        )
        request = dataflow_v1beta3.LaunchFlexTemplateRequest(
            project_id=self.project,
            location=self.region,
            launch_parameter=dataflow_v1beta3.LaunchFlexTemplateParameter(
                job_name=job_name,
                container_spec_gcs_path=self.template_uri,
                parameters=parameters,
                environment=environment,
            ),
        )
        try:
            response = self.flex_client.launch_flex_template(request=request)
        except AlreadyExists:
            return LaunchResult(job_name, "exists", {"model_version": model_version})
        return LaunchResult(
            job_name, "started", {"model_version": model_version, "job_id": response.job.id}
        )
