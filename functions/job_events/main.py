"""job_events: a Dataproc workflow or Dataflow job ended -> decision, retry, alert.

Two Eventarc triggers deliver here: Dataflow's direct ``statusChanged`` event, and the
job-watch Pub/Sub tick (Cloud Scheduler) on which the Dataproc workflows still running are
polled. The logic is :mod:`simrec.stages.jobs`.
"""

import functions_framework
from cloudevents.http import CloudEvent

import simrec.stages.jobs as stage
from simrec.adapters import build_adapters
from simrec.config import Settings
from simrec.stages.decisions import Decision, guarded


@functions_framework.cloud_event
def job_events(cloud_event: CloudEvent) -> Decision:
    def work() -> Decision:
        settings = Settings()
        return stage.on_event(cloud_event, settings, build_adapters(settings))

    return guarded(stage.STAGE, work)
