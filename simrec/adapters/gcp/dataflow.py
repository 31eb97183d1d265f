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
from simrec.adapters.job_options import LoadJobOptions, load_job_options
from simrec.adapters.launch_ports import LaunchResult, LoadRequest
from simrec.config import Settings
from simrec.core import layout
from simrec.core.snapshot import METADATA_NAME

MAX_ERROR_MESSAGES = 3
_JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,62}[a-z0-9])?$")


class FlexTemplateLauncher:
    """Beam port on Dataflow Flex Templates (see the module docstring).

    The job's parameters and launch environment come from
    :func:`simrec.adapters.job_options.load_job_options`, as the local launcher's do.
    ``flex_client`` / ``jobs_client`` / ``messages_client``: injected
    ``FlexTemplatesServiceClient``, ``JobsV1Beta3Client`` and ``MessagesV1Beta3Client``;
    by default created on first use (endpoint as in :mod:`simrec.adapters.gcp._endpoints`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        flex_client: Any = None,
        jobs_client: Any = None,
        messages_client: Any = None,
    ) -> None:
        self.settings = settings
        self.project = settings.gcp_project
        self.region = settings.gcp_region
        self.endpoint = settings.dataflow_endpoint
        self._flex, self._jobs, self._messages = flex_client, jobs_client, messages_client

    @classmethod
    def from_settings(cls, settings: Settings) -> FlexTemplateLauncher:
        return cls(settings)

    def _lazy(self, attr: str, service: str, name: str) -> Any:
        """The injected client in ``attr``, else one made on first use (_endpoints)."""
        if getattr(self, attr) is None:
            setattr(self, attr, _endpoints.gapic_client("dataflow_v1beta3", service, name,
                                                        self.endpoint))  # fmt: skip
        return getattr(self, attr)

    flex_client = property(
        lambda self: self._lazy("_flex", "flex_templates_service", "FlexTemplatesService")
    )
    jobs_client = property(lambda self: self._lazy("_jobs", "jobs_v1_beta3", "JobsV1Beta3"))
    messages_client = property(
        lambda self: self._lazy("_messages", "messages_v1_beta3", "MessagesV1Beta3")
    )

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

    def launch(self, request: LoadRequest) -> LaunchResult:
        job_name, model_version = request.job_name, request.model_version
        if not _JOB_NAME.match(job_name):
            raise ValueError(f"invalid Dataflow job name {job_name!r}")
        if not self.project:
            raise ValueError("SIMREC_GCP_PROJECT is required to launch the Dataflow load")
        if not self.settings.flex_template_uri.startswith("gs://"):
            raise ValueError(
                "SIMREC_FLEX_TEMPLATE_URI must be the gs:// path of the load Flex Template, "
                f"got {self.settings.flex_template_uri!r}"
            )
        metadata = layout.join(
            layout.model_version(request.models_root, request.tenant, model_version),
            METADATA_NAME,
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
        options = load_job_options(self.settings, **request.run())
        return self._launch(job_name, options, model_version)

    def _launch(self, job_name: str, options: LoadJobOptions, model_version: str) -> LaunchResult:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import dataflow_v1beta3

        request = dataflow_v1beta3.LaunchFlexTemplateRequest(
            project_id=self.project,
            location=self.region,
            launch_parameter=dataflow_v1beta3.LaunchFlexTemplateParameter(
                job_name=job_name,
                container_spec_gcs_path=self.settings.flex_template_uri,
                parameters=options.parameters,
                environment=dataflow_v1beta3.FlexTemplateRuntimeEnvironment(
                    **options.environment
                ),
            ),
        )
        try:
            response = self.flex_client.launch_flex_template(request=request)
        except AlreadyExists:
            return LaunchResult(job_name, "exists", {"model_version": model_version})
        return LaunchResult(
            job_name, "started", {"model_version": model_version, "job_id": response.job.id}
        )

    def job_error(self, job_id: str, job_name: str) -> str:
        """The job's error messages (``ListJobMessages``, importance ERROR and above), the
        first few joined: the Job resource of the status event carries no error text."""
        from google.cloud import dataflow_v1beta3

        request = dataflow_v1beta3.ListJobMessagesRequest(
            project_id=self.project,
            job_id=job_id,
            location=self.region,
            minimum_importance=dataflow_v1beta3.JobMessageImportance.JOB_MESSAGE_ERROR,
        )
        texts = []
        for message in self.messages_client.list_job_messages(request=request):
            texts.append(message.message_text)
            if len(texts) == MAX_ERROR_MESSAGES:
                break
        return " | ".join(texts) or f"no error message for Dataflow job {job_name} ({job_id})"
