"""export: the nightly Pub/Sub message (from Cloud Scheduler) -> the run's export.

Runs the export SQL (BigQuery; locally DuckDB) for the run's window, writes the day
partitions, then the manifest that starts the next stage. A run whose export is complete
resumes at its first incomplete stage instead (``simrec cloud rerun``); ``"force": true``
starts a new attempt. A redelivered message (same event id) starts nothing new.
"""

import datetime as dt

import functions_framework
from cloudevents.http import CloudEvent

import simrec.stages.export as stage
from simrec.adapters import build_adapters
from simrec.config import Settings
from simrec.stages.cloudevents import pubsub_payload
from simrec.stages.decisions import Decision, guarded


@functions_framework.cloud_event
def export(cloud_event: CloudEvent) -> Decision:
    def work() -> Decision:
        settings = Settings()
        payload = pubsub_payload(cloud_event)
        today = dt.datetime.now(dt.UTC).date()
        return stage.on_message(
            payload, settings, build_adapters(settings).warehouse, today,
            message_id=str(cloud_event["id"]),  # the Pub/Sub message id: same on redelivery
        )  # fmt: skip

    return guarded(stage.STAGE, work)
