"""Spark launcher on Dataproc: instantiate the workflow template (a managed ephemeral
cluster running ``spark/dimsum_job.py``) for one run, without waiting for it.

The template (Terraform) declares two parameters, which this launcher fills:
``EXPORT_MANIFEST`` (gs:// URI of the run's export manifest) and ``OUTPUT`` (the run's
similarities folder); the job reads every run parameter from the manifest.

Idempotency: Dataproc ignores a second ``InstantiateWorkflowTemplate`` with the same
``request_id`` and returns the first operation, so the request id is derived from the
run; and a run whose similarity manifest already exists is not launched at all.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from simrec import storage
from simrec.adapters.gcp import _endpoints
from simrec.adapters.launch_ports import LaunchResult
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams

REQUEST_ID_MAX = 40
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
PARAM_EXPORT_MANIFEST = "EXPORT_MANIFEST"
PARAM_OUTPUT = "OUTPUT"


def dataproc_request_id(request_id: str) -> str:
    """A Dataproc request id (``[a-zA-Z0-9_-]``, at most 40) from the stage's request id.

    Valid ids are kept; others keep a readable prefix plus a hash of the whole id, so
    different runs never share an id and the same run always gets the same one.
    """
    if _REQUEST_ID.match(request_id):
        return request_id
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:12]
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", request_id)[: REQUEST_ID_MAX - len(digest) - 1]
    prefix = prefix.rstrip("-_") or "simrec"
    return f"{prefix}-{digest}"


class DataprocWorkflowLauncher:
    """Spark port on Dataproc workflow templates (see the module docstring).

    ``client``: an injected ``dataproc_v1.WorkflowTemplateServiceClient``; by default one
    is created on first use for the region's endpoint (or ``endpoint``).
    """

    def __init__(
        self,
        project: str,
        region: str,
        template: str,
        *,
        endpoint: str = "",
        client: Any = None,
    ) -> None:
        self.project = project
        self.region = region
        self.template = template
        self.endpoint = endpoint
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> DataprocWorkflowLauncher:
        return cls(
            settings.gcp_project,
            settings.gcp_region,
            settings.dataproc_workflow_template,
            endpoint=settings.dataproc_endpoint,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import dataproc_v1
            from google.cloud.dataproc_v1.services.workflow_template_service.transports import (
                WorkflowTemplateServiceGrpcTransport,
            )

            self._client = dataproc_v1.WorkflowTemplateServiceClient(
                **_endpoints.gapic_kwargs(
                    self.endpoint,
                    WorkflowTemplateServiceGrpcTransport,
                    # Regional templates are only served by the regional endpoint.
                    default_endpoint=f"{self.region}-dataproc.googleapis.com:443",
                )
            )
        return self._client

    @property
    def template_name(self) -> str:
        if not self.project:
            raise ValueError("SIMREC_GCP_PROJECT is required to start the Dataproc workflow")
        if "/" in self.template:  # already a full resource name
            return self.template
        return (
            f"projects/{self.project}/regions/{self.region}/workflowTemplates/{self.template}"
        )

    def submit(
        self, *, export_manifest_uri: str, output_uri: str, params: RunParams, request_id: str
    ) -> LaunchResult:
        rid = dataproc_request_id(request_id)
        manifest = layout.join(output_uri, layout.MANIFEST_NAME)
        if storage.exists(manifest):
            return LaunchResult(rid, "exists", {"manifest": manifest})
        from google.cloud import dataproc_v1

        request = dataproc_v1.InstantiateWorkflowTemplateRequest(
            name=self.template_name,
            request_id=rid,
            parameters={PARAM_EXPORT_MANIFEST: export_manifest_uri, PARAM_OUTPUT: output_uri},
        )
        operation = self.client.instantiate_workflow_template(request=request)
        return LaunchResult(
            rid,
            "started",
            {"template": request.name, "operation": operation.operation.name},
        )
