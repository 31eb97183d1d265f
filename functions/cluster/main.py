"""cluster: the Dataproc similarity workflow of a run, from launch to outcome.

- Cloud Storage object finalized (Eventarc): acts only on export manifests; starts the
  Dataproc workflow (locally: the Spark job) with a request id derived from the run and
  attempt, so a redelivered event starts nothing new.
- Dataproc's audit entry of a workflow operation, and the job-watch Pub/Sub tick (Cloud
  Scheduler): polls the workflows still running; a failed one is a ``failed`` decision,
  then a retry as the next attempt, or the alert after the last
  (:mod:`simrec.stages.jobs`).

Which event goes where: :mod:`simrec.stages.routes`.
"""

import functions_framework
from cloudevents.http import CloudEvent

from simrec import logs
from simrec.stages import routes
from simrec.stages.decisions import Decision

logs.configure()


@functions_framework.cloud_event
def cluster(cloud_event: CloudEvent) -> Decision:
    return routes.handle("cluster", cloud_event)
