"""dataflow_launch: Cloud Storage object finalized (Eventarc) -> Beam load for the run.

Acts only on similarity manifests; launches the Dataflow Flex Template (locally: the
Beam pipeline on the local runner) under a job name derived from the run.
"""

import functions_framework
from cloudevents.http import CloudEvent

import simrec.stages.load as stage
from simrec.adapters import build_adapters
from simrec.config import Settings
from simrec.stages.cloudevents import storage_object
from simrec.stages.decisions import Decision, guarded


@functions_framework.cloud_event
def dataflow_launch(cloud_event: CloudEvent) -> Decision:
    def work() -> Decision:
        settings = Settings()
        bucket, name = storage_object(cloud_event)
        return stage.on_object_finalized(bucket, name, settings, build_adapters(settings).beam)

    return guarded(stage.STAGE, work)
