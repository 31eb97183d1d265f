"""cluster: Cloud Storage object finalized (Eventarc) -> similarity job for the run.

Acts only on export manifests; starts the Dataproc workflow (locally: the Spark job)
with a request id derived from the run, so a redelivered event starts nothing new.
"""

import functions_framework
from cloudevents.http import CloudEvent

import simrec.stages.cluster as stage
from simrec.adapters import build_adapters
from simrec.config import Settings
from simrec.stages.cloudevents import storage_object
from simrec.stages.decisions import Decision, guarded


@functions_framework.cloud_event
def cluster(cloud_event: CloudEvent) -> Decision:
    def work() -> Decision:
        settings = Settings()
        bucket, name = storage_object(cloud_event)
        return stage.on_object_finalized(bucket, name, settings, build_adapters(settings).spark)

    return guarded(stage.STAGE, work)
