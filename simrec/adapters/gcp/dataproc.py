"""Spark launcher on Dataproc: instantiate the workflow template (a managed ephemeral
cluster running ``spark/dimsum_job.py``) for one run, without waiting for it.

The template (Terraform) declares two parameters, which this launcher fills from
:func:`simrec.adapters.job_options.spark_job_options` (as the local launcher its flags):
``EXPORT_MANIFEST`` (gs:// URI of the run's export manifest) and ``OUTPUT`` (the run's
similarities folder); the job reads every run parameter from the manifest.

How a workflow ended is read from its operation (``GetOperation``): ``done``, ``error``
and the ``WorkflowMetadata`` (the create-cluster operation's error, each job node's
state and error), so a workflow whose cluster was never created is a failure too.

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
from simrec.adapters.job_options import spark_job_options
from simrec.adapters.launch_ports import JobOutcome, LaunchResult
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams

REQUEST_ID_MAX = 40
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


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

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self.project = settings.gcp_project
        self.region = settings.gcp_region
        self.endpoint = settings.dataproc_endpoint
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> DataprocWorkflowLauncher:
        return cls(settings)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _endpoints.gapic_client(
                "dataproc_v1", "workflow_template_service", "WorkflowTemplateService",
                self.endpoint,
                # Regional templates are only served by the regional endpoint.
                default_endpoint=f"{self.region}-dataproc.googleapis.com:443",
            )  # fmt: skip
        return self._client

    @property
    def template_name(self) -> str:
        if not self.project:
            raise ValueError("SIMREC_GCP_PROJECT is required to start the Dataproc workflow")
        template = self.settings.dataproc_workflow_template
        if "/" in template:  # already a full resource name
            return template
        return f"projects/{self.project}/regions/{self.region}/workflowTemplates/{template}"

    def submit(
        self, *, export_manifest_uri: str, output_uri: str, params: RunParams, request_id: str
    ) -> LaunchResult:
        rid = dataproc_request_id(request_id)
        manifest = layout.join(output_uri, layout.MANIFEST_NAME)
        if storage.exists(manifest):
            return LaunchResult(rid, "exists", {"manifest": manifest})
        from google.cloud import dataproc_v1

        options = spark_job_options(
            self.settings, export_manifest_uri=export_manifest_uri, output_uri=output_uri
        )
        request = dataproc_v1.InstantiateWorkflowTemplateRequest(
            name=self.template_name, request_id=rid, parameters=options.template_parameters()
        )
        operation = self.client.instantiate_workflow_template(request=request)
        return LaunchResult(
            rid,
            "started",
            {"template": request.name, "operation": operation.operation.name},
        )

    def workflow_outcome(self, job_id: str, operation: str) -> JobOutcome:
        """How the workflow of ``operation`` ended, from the operation and its metadata."""
        from google.cloud import dataproc_v1
        from google.longrunning import operations_pb2

        op = self.client.get_operation(request=operations_pb2.GetOperationRequest(name=operation))
        if not op.done:
            return JobOutcome("running")
        meta = dataproc_v1.WorkflowMetadata.deserialize(op.metadata.value)
        completed = dataproc_v1.WorkflowNode.NodeState.COMPLETED
        nodes = list(meta.graph.nodes)
        errors = [op.error.message] if op.error.code else []
        errors += [e for e in (meta.create_cluster.error, *(n.error for n in nodes)) if e]
        if not errors and nodes and all(n.state == completed for n in nodes):
            return JobOutcome("succeeded", "DONE")
        if not any(n.job_id for n in nodes):
            detail = "the workflow never started its job"
        else:
            detail = "job " + ", ".join(f"{n.step_id} {n.state.name}" for n in nodes)
        return JobOutcome("failed", detail, " | ".join(errors) or "no error reported")
