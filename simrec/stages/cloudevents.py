"""Reading the CloudEvents the functions receive, and building them for local delivery.

Types are the ones Google Cloud delivers: Pub/Sub ``messagePublished`` (the message data
base64-encoded inside ``data.message``), Cloud Storage ``object.v1.finalized`` (the
object resource as ``data``) and Dataflow's direct event ``job.v1beta3.statusChanged``
(``data`` is a ``JobEventData``: the Job resource in proto3 JSON under ``payload``; the
job name is also the ``job`` extension attribute and ``subject`` is ``jobs/<name>``, see
google-cloudevents proto/google/events/cloud/dataflow/v1beta3/{events,data}.proto), and
Cloud Audit Logs ``audit.log.v1.written`` (``data`` is a ``LogEntryData``: the entry with
``protoPayload`` (serviceName, methodName, status) and ``operation`` (id, first, last),
proto/google/events/cloud/audit/v1/data.proto).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from cloudevents.http import CloudEvent

#: Roles of the Pub/Sub topics: a topic id is ``<prefix>-<role>``.
NIGHTLY, JOB_WATCH = "nightly", "job-watch"
TOPIC_ROLES = (NIGHTLY, JOB_WATCH)

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
DATAFLOW_STATUS_CHANGED = "google.cloud.dataflow.job.v1beta3.statusChanged"
AUDIT_LOG_WRITTEN = "google.cloud.audit.log.v1.written"
DATAFLOW_DATA_SCHEMA = (
    "https://googleapis.github.io/google-cloudevents/proto/google/events/cloud/dataflow/"
    "v1beta3/data.proto#JobEventData"
)


class BadEvent(ValueError):
    """The event is not one this function can act on (never retried usefully)."""


def _data(event: CloudEvent) -> Any:
    """The event's data, decoded when it came as JSON text or bytes."""
    data = event.data or {}
    return json.loads(data) if isinstance(data, (bytes, str)) else data


def pubsub_payload(event: CloudEvent) -> dict[str, Any]:
    """The JSON object a Pub/Sub message carries (empty message -> ``{}``)."""
    data = _data(event)
    message = data.get("message") or {}
    raw = message.get("data")
    if not raw:
        return {}
    try:
        payload = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError) as exc:
        raise BadEvent(f"Pub/Sub message data is not base64 JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadEvent("Pub/Sub message data must be a JSON object")
    return payload


def storage_object(event: CloudEvent) -> tuple[str, str]:
    """``(bucket, name)`` of a finalized object."""
    data = _data(event)
    bucket, name = data.get("bucket"), data.get("name")
    if not bucket or not name:
        raise BadEvent("storage event without bucket or name")
    return str(bucket), str(name)


def dataflow_job(event: CloudEvent) -> dict[str, Any]:
    """The Job resource (proto3 JSON: ``id``, ``name``, ``currentState``, ``labels``...) a
    Dataflow status-changed event carries."""
    data = _data(event)
    job = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(job, dict) or not job.get("name") or not job.get("currentState"):
        raise BadEvent("Dataflow event without payload.name and payload.currentState")
    return job


def audit_entry(event: CloudEvent) -> dict[str, Any]:
    """The log entry (``protoPayload``, ``operation``...) an audit-log event carries."""
    data = _data(event)
    if not isinstance(data, dict) or not isinstance(data.get("protoPayload"), dict):
        raise BadEvent("audit log event without protoPayload")
    return data


def topic_of(event: CloudEvent) -> str:
    """The topic id of a Pub/Sub event (from its ``source``)."""
    return str(event["source"]).rsplit("/topics/", 1)[-1]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def make_pubsub_event(project: str, topic: str, payload: dict[str, Any]) -> CloudEvent:
    message_id = uuid.uuid4().hex
    return CloudEvent(
        {
            "type": PUBSUB_PUBLISHED,
            "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
            "id": message_id,
            "time": _now(),
        },
        {
            "message": {
                "data": base64.b64encode(json.dumps(payload).encode()).decode(),
                "messageId": message_id,
                "publishTime": _now(),
            },
            "subscription": f"projects/{project}/subscriptions/{topic}-local",
        },
    )


def make_storage_event(bucket: str, name: str, size: int, generation: int) -> CloudEvent:
    return CloudEvent(
        {
            "type": STORAGE_FINALIZED,
            "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "subject": f"objects/{name}",
            "id": f"{generation}",
            "time": _now(),
        },
        {
            "bucket": bucket,
            "name": name,
            "size": str(size),
            "generation": str(generation),
            "contentType": "application/octet-stream",
        },
    )


def make_dataflow_event(project: str, region: str, job: dict[str, Any]) -> CloudEvent:
    """A status-changed event as Eventarc delivers it; ``job``: the Job resource JSON."""
    name = job["name"]
    return CloudEvent(
        {
            "type": DATAFLOW_STATUS_CHANGED,
            "source": f"//dataflow.googleapis.com/projects/{project}/locations/{region}",
            "subject": f"jobs/{name}",
            "job": name,
            "id": uuid.uuid4().hex,
            "time": _now(),
            "datacontenttype": "application/json; charset=utf-8",
            "dataschema": DATAFLOW_DATA_SCHEMA,
        },
        {
            "payload": {"projectId": project, "location": region, **job},
            "@type": "type.googleapis.com/google.events.cloud.dataflow.v1beta3.JobEventData",
        },
    )
