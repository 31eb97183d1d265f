"""Which function handles which CloudEvent, and with which stage: the one routing table.

The Cloud Functions' handlers (``functions/<name>/main.py``) and the local dispatcher
(:mod:`simrec.local.dispatcher`) both read :data:`ROUTES`, so an event reaches the same
code in both. The functions are exactly export, cluster and dataflow_launch (plus the
recommend service); how a launched job ended goes to the function that launched it,
since its retry launches the job again:

- Pub/Sub ``messagePublished`` on the nightly topic -> export;
- Cloud Storage ``object.v1.finalized`` on the data bucket -> cluster and dataflow_launch
  (each acts on its own manifest only);
- Dataflow's ``job.v1beta3.statusChanged`` -> dataflow_launch (:mod:`simrec.stages.jobs`);
- Cloud Audit Logs ``audit.log.v1.written`` (Dataproc's InstantiateWorkflowTemplate) and
  Pub/Sub ``messagePublished`` on the job-watch topic (Cloud Scheduler's tick) -> cluster.

A Pub/Sub event names its topic in ``source``
(``//pubsub.googleapis.com/projects/P/topics/T``): the topic's role is the suffix of its
id after the deployment's prefix (``<prefix>-nightly``, ``<prefix>-job-watch``, as
Terraform and the local dispatcher name them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cloudevents.http import CloudEvent

from simrec.adapters import build_adapters
from simrec.config import Settings
from simrec.stages import cluster, export, jobs, load
from simrec.stages.cloudevents import (
    AUDIT_LOG_WRITTEN,
    DATAFLOW_STATUS_CHANGED,
    JOB_WATCH,
    NIGHTLY,
    PUBSUB_PUBLISHED,
    STORAGE_FINALIZED,
    TOPIC_ROLES,
    BadEvent,
    pubsub_payload,
    storage_object,
    topic_of,
)
from simrec.stages.decisions import Decision, guarded

Handler = Callable[[CloudEvent, Settings, Any], Decision]


def _export(event: CloudEvent, settings: Settings, adapters: Any) -> Decision:
    today = dt.datetime.now(dt.UTC).date()
    return export.on_message(
        pubsub_payload(event), settings, adapters.warehouse, today,
        message_id=str(event["id"]),  # the Pub/Sub message id: same on redelivery
    )  # fmt: skip


def _cluster(event: CloudEvent, settings: Settings, adapters: Any) -> Decision:
    bucket, name = storage_object(event)
    return cluster.on_object_finalized(bucket, name, settings, adapters.spark)


def _load(event: CloudEvent, settings: Settings, adapters: Any) -> Decision:
    bucket, name = storage_object(event)
    return load.on_object_finalized(bucket, name, settings, adapters.beam)


def _watch_tick(event: CloudEvent, settings: Settings, adapters: Any) -> Decision:
    return jobs.on_watch_tick(settings, adapters)


#: (event type, topic role for Pub/Sub else "") -> {function: (stage, handler)}.
ROUTES: dict[tuple[str, str], dict[str, tuple[str, Handler]]] = {
    (PUBSUB_PUBLISHED, NIGHTLY): {"export": (export.STAGE, _export)},
    (STORAGE_FINALIZED, ""): {
        "cluster": (cluster.STAGE, _cluster),
        "dataflow_launch": (load.STAGE, _load),
    },
    (DATAFLOW_STATUS_CHANGED, ""): {"dataflow_launch": (jobs.STAGE, jobs.on_dataflow_event)},
    (AUDIT_LOG_WRITTEN, ""): {"cluster": (jobs.STAGE, jobs.on_audit_event)},
    (PUBSUB_PUBLISHED, JOB_WATCH): {"cluster": (jobs.STAGE, _watch_tick)},
}
#: Every function that handles events (the recommend service serves HTTP).
FUNCTIONS = tuple(dict.fromkeys(fn for routes in ROUTES.values() for fn in routes))


def topic_role(event: CloudEvent) -> str:
    """The role of the topic a Pub/Sub event was published on ("" if none matches)."""
    topic = topic_of(event)
    return next((role for role in TOPIC_ROLES if topic.endswith(f"-{role}")), "")


def event_key(event: CloudEvent) -> tuple[str, str]:
    kind = str(event["type"])
    return (kind, topic_role(event)) if kind == PUBSUB_PUBLISHED else (kind, "")


def subscribers(event: CloudEvent) -> list[str]:
    """The functions an event is delivered to."""
    return list(ROUTES.get(event_key(event), {}))


def route_of(function: str, event: CloudEvent) -> tuple[str, Handler] | None:
    """The (stage, handler) of ``function`` for ``event``. A Pub/Sub event whose topic is
    not one of the roles (a push subscription made by hand, or functions-framework's
    conversion of a raw push, whose ``source`` names no topic) goes to the function's only
    Pub/Sub route: the trigger chose the function; a topic of another role never does."""
    mine = {key: routes[function] for key, routes in ROUTES.items() if function in routes}
    key = event_key(event)
    if key in mine or key != (PUBSUB_PUBLISHED, ""):
        return mine.get(key)
    pubsub = [route for (kind, _), route in mine.items() if kind == PUBSUB_PUBLISHED]
    return pubsub[0] if len(pubsub) == 1 else None


def handle(function: str, event: CloudEvent) -> Decision:
    """A function's whole handler: route the event, run its stage, log one decision."""
    route = route_of(function, event)
    if route is None:
        where = f" from {event['source']}" if event["type"] == PUBSUB_PUBLISHED else ""

        def refuse() -> Decision:
            raise BadEvent(f"{function} does not handle {event['type']}{where}")

        return guarded(function, refuse)
    stage, handler = route

    def work() -> Decision:
        settings = Settings()
        return handler(event, settings, build_adapters(settings))

    return guarded(stage, work)
