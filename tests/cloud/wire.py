"""Google Cloud over a real wire, on loopback: stubs, a fake, emulators, function servers.

- :class:`GrpcStub`: a ``grpc.server`` implementing Dataproc's
  ``InstantiateWorkflowTemplate`` (deduplicated by ``request_id`` as Dataproc does) and the
  workflow operation's ``GetOperation`` (``done``/``error`` + ``WorkflowMetadata``), and
  Dataflow's ``LaunchFlexTemplate`` + ``ListJobs`` (a second active job of one name is
  ``ALREADY_EXISTS``, as on Dataflow) + ``ListJobMessages``. It records every request
  proto; the real GAPIC clients talk to it through
  ``...GrpcTransport(channel=grpc.insecure_channel(addr))``.
- :class:`FakeBigQueryEndpoint`: a loopback HTTP endpoint that records the
  ``jobs.insert`` requests of the real ``google-cloud-bigquery`` client and answers with
  the request *shape* only (job states, the counts rows it is told to return). It runs no
  SQL: the SQL is tested on DuckDB (tests/engines/test_export_sql.py).
- :class:`GcsEmulator`: gcp-storage-emulator (pure Python) for google-cloud-storage and gcsfs.
- :data:`PUBSUB`: the gcloud Pub/Sub emulator's spec (skips when absent).
- :class:`FunctionServer`: a function in its own ``functions-framework`` process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from google.cloud import dataflow_v1beta3, dataproc_v1
from google.longrunning import operations_pb2

from tests.cloud.emulators import EmulatorSpec
from tests.net import free_port

PROJECT = "simrec-test"
REGION = "europe-west1"
BUCKET = "simrec-data"

PUBSUB = EmulatorSpec("pubsub", "pubsub-emulator", "PUBSUB_EMULATOR_HOST")
EVENTS_TABLE = f"{PROJECT}.shop.events"


def dimsum_node(state: str, job_id: str = "", error: str = "") -> dataproc_v1.WorkflowNode:
    """The workflow's one job node (step ``dimsum``) in ``state``, as Dataproc reports it."""
    return dataproc_v1.WorkflowNode(
        step_id="dimsum", job_id=job_id, error=error,
        state=dataproc_v1.WorkflowNode.NodeState[state],
    )  # fmt: skip


def gcp_settings_env(bigquery_url: str, grpc_endpoint: str) -> dict[str, str]:
    """The deployment's ``SIMREC_*`` settings on the gcp backend, its APIs pointed at the
    loopback stand-ins (the BigQuery fake, the Dataproc/Dataflow gRPC stub)."""
    return {
        "SIMREC_BACKEND": "gcp",
        "SIMREC_GCP_PROJECT": PROJECT,
        "SIMREC_GCP_REGION": REGION,
        "SIMREC_DATA_URI": f"gs://{BUCKET}",
        "SIMREC_EVENTS_SOURCE": EVENTS_TABLE,
        "SIMREC_WINDOW_DAYS": "3",
        "SIMREC_BIGQUERY_ENDPOINT": bigquery_url,
        "SIMREC_DATAPROC_ENDPOINT": grpc_endpoint,
        "SIMREC_DATAFLOW_ENDPOINT": grpc_endpoint,
        "SIMREC_FLEX_TEMPLATE_URI": "gs://simrec-staging/flex/load.json",
        "SIMREC_STAGING_URI": "gs://simrec-staging",
    }


# --- gRPC stub: Dataproc + Dataflow ------------------------------------------------------
@dataclass
class StubJob:
    id: str
    name: str
    state: dataflow_v1beta3.JobState = dataflow_v1beta3.JobState.JOB_STATE_RUNNING

    @property
    def active(self) -> bool:
        return self.state in (
            dataflow_v1beta3.JobState.JOB_STATE_PENDING,
            dataflow_v1beta3.JobState.JOB_STATE_QUEUED,
            dataflow_v1beta3.JobState.JOB_STATE_RUNNING,
        )


@dataclass
class GrpcStub:
    """Records request protos; keeps just enough state to deduplicate like the services."""

    address: str = ""
    instantiate_requests: list[dataproc_v1.InstantiateWorkflowTemplateRequest] = field(
        default_factory=list
    )
    operations: dict[str, str] = field(default_factory=dict)  # request_id -> operation
    duplicates: list[str] = field(default_factory=list)  # request ids seen again
    launch_requests: list[dataflow_v1beta3.LaunchFlexTemplateRequest] = field(
        default_factory=list
    )
    list_requests: list[dataflow_v1beta3.ListJobsRequest] = field(default_factory=list)
    jobs: list[StubJob] = field(default_factory=list)
    launch_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    hide_jobs_from_list: bool = False  # simulate a launch racing past the ListJobs check
    # operation name -> the Operation GetOperation answers (running until finished)
    finished_operations: dict[str, operations_pb2.Operation] = field(default_factory=dict)
    get_operation_requests: list[str] = field(default_factory=list)
    job_messages: dict[str, list[dataflow_v1beta3.JobMessage]] = field(default_factory=dict)
    list_messages_requests: list[dataflow_v1beta3.ListJobMessagesRequest] = field(
        default_factory=list
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        """Value for ``SIMREC_DATAPROC_ENDPOINT`` / ``SIMREC_DATAFLOW_ENDPOINT``."""
        return f"http://{self.address}"

    # Dataproc WorkflowTemplateService
    def instantiate(self, request, context) -> operations_pb2.Operation:
        with self._lock:
            self.instantiate_requests.append(request)
            if request.request_id and request.request_id in self.operations:
                self.duplicates.append(request.request_id)
                name = self.operations[request.request_id]
            else:
                name = f"projects/{PROJECT}/regions/{REGION}/operations/{uuid.uuid4()}"
                if request.request_id:
                    self.operations[request.request_id] = name
        return operations_pb2.Operation(name=name, done=False)

    def get_operation(self, request, context) -> operations_pb2.Operation:
        with self._lock:
            self.get_operation_requests.append(request.name)
            if request.name in self.finished_operations:
                return self.finished_operations[request.name]
        return operations_pb2.Operation(name=request.name, done=False)

    def finish_workflow(
        self, operation: str, metadata: dataproc_v1.WorkflowMetadata, error: str = ""
    ) -> None:
        """The operation is done, with Dataproc's metadata (and error, if given)."""
        from google.protobuf import any_pb2
        from google.rpc import status_pb2

        packed = any_pb2.Any(
            type_url="type.googleapis.com/google.cloud.dataproc.v1.WorkflowMetadata",
            value=dataproc_v1.WorkflowMetadata.serialize(metadata),
        )
        op = operations_pb2.Operation(name=operation, done=True, metadata=packed)
        if error:
            op.error.CopyFrom(status_pb2.Status(code=9, message=error))  # FAILED_PRECONDITION
        else:
            op.response.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/google.protobuf.Empty"))
        with self._lock:
            self.finished_operations[operation] = op

    @property
    def workflows_started(self) -> int:
        return len({self.operations.get(r.request_id, r) for r in self.instantiate_requests})

    # Dataflow FlexTemplatesService + JobsV1Beta3
    def launch(self, request, context) -> dataflow_v1beta3.LaunchFlexTemplateResponse:
        with self._lock:
            self.launch_requests.append(request)
            name = request.launch_parameter.job_name
            if any(j.name == name and j.active for j in self.jobs):
                context.abort(
                    grpc.StatusCode.ALREADY_EXISTS, f"There is already an active job named {name}"
                )
            job = StubJob(id=f"2024-job-{len(self.jobs)}", name=name)
            self.jobs.append(job)
            self.launch_labels[job.id] = dict(
                request.launch_parameter.environment.additional_user_labels
            )
        return dataflow_v1beta3.LaunchFlexTemplateResponse(
            job=dataflow_v1beta3.Job(id=job.id, name=job.name, current_state=job.state)
        )

    def list_jobs(self, request, context) -> dataflow_v1beta3.ListJobsResponse:
        with self._lock:
            self.list_requests.append(request)
            jobs = [] if self.hide_jobs_from_list else list(self.jobs)
        if request.filter == dataflow_v1beta3.ListJobsRequest.Filter.ACTIVE:
            jobs = [j for j in jobs if j.active]
        if request.name:
            jobs = [j for j in jobs if j.name == request.name]
        return dataflow_v1beta3.ListJobsResponse(
            jobs=[dataflow_v1beta3.Job(id=j.id, name=j.name, current_state=j.state) for j in jobs]
        )

    def list_job_messages(self, request, context) -> dataflow_v1beta3.ListJobMessagesResponse:
        with self._lock:
            self.list_messages_requests.append(request)
            least = _rank(request.minimum_importance)
            messages = [m for m in self.job_messages.get(request.job_id, [])
                        if _rank(m.message_importance) >= least]  # fmt: skip
        return dataflow_v1beta3.ListJobMessagesResponse(job_messages=messages)

    def job(self, name: str) -> dataflow_v1beta3.Job:
        """The Job resource of the last job named ``name``, as Dataflow describes it."""
        [job] = [j for j in self.jobs if j.name == name][-1:]
        return dataflow_v1beta3.Job(
            id=job.id, project_id=PROJECT, name=job.name, location=REGION,
            type_=dataflow_v1beta3.JobType.JOB_TYPE_BATCH, current_state=job.state,
            labels=dict(self.launch_labels.get(job.id, {})),
        )  # fmt: skip

    def finish_jobs(self, state: dataflow_v1beta3.JobState) -> None:
        with self._lock:
            for job in self.jobs:
                job.state = state

    @property
    def flex_jobs_started(self) -> int:
        return len(self.jobs)


_IMPORTANCE = dataflow_v1beta3.JobMessageImportance
#: Importance from least to most (the enum's numbers are not in this order: BASIC is 5).
_IMPORTANCE_ORDER = [_IMPORTANCE.JOB_MESSAGE_IMPORTANCE_UNKNOWN, _IMPORTANCE.JOB_MESSAGE_DEBUG,
                     _IMPORTANCE.JOB_MESSAGE_DETAILED, _IMPORTANCE.JOB_MESSAGE_BASIC,
                     _IMPORTANCE.JOB_MESSAGE_WARNING, _IMPORTANCE.JOB_MESSAGE_ERROR]  # fmt: skip


def _rank(importance: dataflow_v1beta3.JobMessageImportance) -> int:
    return _IMPORTANCE_ORDER.index(importance)


class _GetOperationRequest:
    """``operations_pb2.GetOperationRequest`` with the ``deserialize`` _unary expects."""

    deserialize = staticmethod(operations_pb2.GetOperationRequest.FromString)


def _unary(fn, request_cls, response_cls) -> grpc.RpcMethodHandler:
    def serialize(message) -> bytes:
        if isinstance(message, operations_pb2.Operation):
            return message.SerializeToString()
        return response_cls.serialize(message)

    return grpc.unary_unary_rpc_method_handler(
        fn, request_deserializer=request_cls.deserialize, response_serializer=serialize
    )


@contextlib.contextmanager
def grpc_stub_server() -> Iterator[GrpcStub]:
    stub = GrpcStub()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "google.cloud.dataproc.v1.WorkflowTemplateService",
                {"InstantiateWorkflowTemplate": _unary(
                    stub.instantiate, dataproc_v1.InstantiateWorkflowTemplateRequest, None
                )},
            ),
            grpc.method_handlers_generic_handler(
                "google.longrunning.Operations",
                {"GetOperation": _unary(
                    stub.get_operation, _GetOperationRequest, None
                )},
            ),
            grpc.method_handlers_generic_handler(
                "google.dataflow.v1beta3.MessagesV1Beta3",
                {"ListJobMessages": _unary(
                    stub.list_job_messages, dataflow_v1beta3.ListJobMessagesRequest,
                    dataflow_v1beta3.ListJobMessagesResponse,
                )},
            ),
            grpc.method_handlers_generic_handler(
                "google.dataflow.v1beta3.FlexTemplatesService",
                {"LaunchFlexTemplate": _unary(
                    stub.launch, dataflow_v1beta3.LaunchFlexTemplateRequest,
                    dataflow_v1beta3.LaunchFlexTemplateResponse,
                )},
            ),
            grpc.method_handlers_generic_handler(
                "google.dataflow.v1beta3.JobsV1Beta3",
                {"ListJobs": _unary(
                    stub.list_jobs, dataflow_v1beta3.ListJobsRequest,
                    dataflow_v1beta3.ListJobsResponse,
                )},
            ),
        )
    )  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stub.address = f"127.0.0.1:{port}"
    try:
        yield stub
    finally:
        server.stop(grace=None)


def dataproc_client(stub: GrpcStub) -> dataproc_v1.WorkflowTemplateServiceClient:
    """The real GAPIC client over a plaintext channel to the stub."""
    from google.cloud.dataproc_v1.services.workflow_template_service.transports import (
        WorkflowTemplateServiceGrpcTransport,
    )

    channel = grpc.insecure_channel(stub.address)
    return dataproc_v1.WorkflowTemplateServiceClient(
        transport=WorkflowTemplateServiceGrpcTransport(channel=channel)
    )


def dataflow_messages_client(stub: GrpcStub) -> dataflow_v1beta3.MessagesV1Beta3Client:
    from google.cloud.dataflow_v1beta3.services.messages_v1_beta3.transports import (
        MessagesV1Beta3GrpcTransport,
    )

    channel = grpc.insecure_channel(stub.address)
    return dataflow_v1beta3.MessagesV1Beta3Client(
        transport=MessagesV1Beta3GrpcTransport(channel=channel)
    )


def dataflow_clients(
    stub: GrpcStub,
) -> tuple[dataflow_v1beta3.FlexTemplatesServiceClient, dataflow_v1beta3.JobsV1Beta3Client]:
    from google.cloud.dataflow_v1beta3.services.flex_templates_service.transports import (
        FlexTemplatesServiceGrpcTransport,
    )
    from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import (
        JobsV1Beta3GrpcTransport,
    )

    channel = grpc.insecure_channel(stub.address)
    return (
        dataflow_v1beta3.FlexTemplatesServiceClient(
            transport=FlexTemplatesServiceGrpcTransport(channel=channel)
        ),
        dataflow_v1beta3.JobsV1Beta3Client(transport=JobsV1Beta3GrpcTransport(channel=channel)),
    )


# --- BigQuery: a recording fake of the REST request shape --------------------------------
_JOBS = re.compile(r"^/bigquery/v2/projects/([^/]+)/jobs/?$")
_JOB = re.compile(r"^/bigquery/v2/projects/([^/]+)/jobs/([^/?]+)$")
_RESULTS = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries/([^/?]+)$")
_TABLE = re.compile(r"^/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/?]+)$")
COUNTS_SCHEMA = [
    {"name": "dt", "type": "DATE", "mode": "NULLABLE"},
    {"name": "reason", "type": "STRING", "mode": "NULLABLE"},
    {"name": "event_name", "type": "STRING", "mode": "NULLABLE"},
    {"name": "row_count", "type": "INTEGER", "mode": "NULLABLE"},
]


class FakeBigQueryEndpoint:
    """A FAKE BigQuery REST endpoint: records ``jobs.insert`` bodies and answers each
    request with the shape the client expects. It executes nothing.

    ``outcome`` decides how the next inserted job ends: ``"done"`` (its result is
    ``counts``: ``(dt iso or None, reason or None, rows)``), ``"failed"`` (DONE with an
    ``errorResult``) or ``"running"`` (never finishes). ``tables`` maps
    ``project.dataset.table`` to column names for ``tables.get``.
    """

    def __init__(self) -> None:
        self.inserts: list[dict[str, Any]] = []  # every jobs.insert body, conflicts too
        self.jobs: dict[str, dict[str, Any]] = {}
        self.outcome = "done"
        self.counts: list[tuple[str | None, str | None, int]] = []
        self.tables: dict[str, list[str]] = {}
        self.table_gets: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def job_resource(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        status: dict[str, Any] = {"state": "DONE" if job["outcome"] != "running" else "RUNNING"}
        if job["outcome"] == "failed":
            status["errorResult"] = {"reason": "invalidQuery", "message": "simulated failure"}
            status["errors"] = [status["errorResult"]]
        return {
            "kind": "bigquery#job",
            "id": f"{job['project']}:{job['location']}.{job_id}",
            "jobReference": {
                "projectId": job["project"], "jobId": job_id, "location": job["location"]
            },
            "configuration": job["body"]["configuration"],
            "status": status,
            "statistics": {"creationTime": "1700000000000", "query": {"statementType": "SCRIPT"}},
        }  # fmt: skip

    def query_results(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        ref = {"projectId": job["project"], "jobId": job_id, "location": job["location"]}
        if job["outcome"] == "running":
            return {"kind": "bigquery#getQueryResultsResponse", "jobReference": ref,
                    "jobComplete": False}  # fmt: skip
        rows = [
            {"f": [{"v": d}, {"v": r}, {"v": e}, {"v": str(n)}]}
            for d, r, *e_n in job["counts"] for e, n in [e_n if len(e_n) == 2 else [None, *e_n]]
        ]
        return {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": ref,
            "jobComplete": True,
            "schema": {"fields": COUNTS_SCHEMA},
            "rows": rows,
            "totalRows": str(len(rows)),
        }

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        if method == "POST" and (m := _JOBS.match(path)):
            assert body is not None
            self.inserts.append(body)
            ref = body["jobReference"]
            job_id = ref["jobId"]
            if job_id in self.jobs:
                return 409, {"error": {
                    "code": 409, "status": "ALREADY_EXISTS",
                    "message": f"Already Exists: Job {m.group(1)}:{ref.get('location')}.{job_id}",
                    "errors": [{"reason": "duplicate", "message": "Already Exists"}],
                }}  # fmt: skip
            self.jobs[job_id] = {
                "project": m.group(1), "location": ref.get("location", "US"), "body": body,
                "outcome": self.outcome, "counts": list(self.counts),
            }  # fmt: skip
            return 200, self.job_resource(job_id)
        if method == "GET" and (m := _JOB.match(path)) and m.group(2) in self.jobs:
            return 200, self.job_resource(m.group(2))
        if method == "GET" and (m := _RESULTS.match(path)) and m.group(2) in self.jobs:
            return 200, self.query_results(m.group(2))
        if method == "GET" and (m := _TABLE.match(path)):
            name = ".".join(m.groups())
            self.table_gets.append(name)
            if name in self.tables:
                fields = [c if isinstance(c, dict) else {"name": c, "type": "STRING"}
                          for c in self.tables[name]]  # fmt: skip
                return 200, {
                    "kind": "bigquery#table",
                    "tableReference": dict(
                        zip(("projectId", "datasetId", "tableId"), m.groups(), strict=True)
                    ),
                    "schema": {"fields": fields},
                }
        return 404, {"error": {"code": 404, "message": f"Not found: {method} {path}",
                               "status": "NOT_FOUND", "errors": [{"reason": "notFound"}]}}

    def start(self) -> FakeBigQueryEndpoint:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                status, payload = fake.handle(method, path, json.loads(raw) if raw else None)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._reply("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._reply("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- GCS: gcp-storage-emulator ----------------------------------------------------------
@dataclass
class GcsEmulator:
    url: str
    server: Any

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=PROJECT, credentials=AnonymousCredentials())


def refresh_gcsfs() -> None:
    """Forget gcsfs listings cached by earlier calls (another client wrote since)."""
    import gcsfs

    for fs in list(gcsfs.GCSFileSystem._cache.values()):
        fs.invalidate_cache()




# --- functions-framework in its own process ------------------------------------------
class FunctionServer:
    """``functions-framework --target T --source S`` on a free loopback port.

    The function's stderr (its JSON decision lines) goes to ``log_path``.
    """

    def __init__(self, target: str, source: Path, env: dict[str, str], workdir: Path) -> None:
        self.target = target
        self.source = source
        self.env = env
        self.port = free_port()
        self.log_path = Path(workdir) / f"{target}-function.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 60.0) -> FunctionServer:
        binary = Path(sys.executable).with_name("functions-framework")
        cmd = [
            str(binary), "--target", self.target, "--source", str(self.source),
            "--signature-type", "cloudevent", "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"function server exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"function server not listening:\n{self.log_path.read_text()}")

    def decisions(self) -> list[dict[str, Any]]:
        """The JSON decision lines the function logged so far."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if "stage" in record and "action" in record:
                        out.append(record)
        return out

    def wait_for_decisions(self, n: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.decisions()
            if len(found) >= n:
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"expected {n} decision(s), got {self.decisions()}; log:\n"
            + self.log_path.read_text(errors="replace")[-3000:]
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
