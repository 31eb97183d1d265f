"""dataflow_launch: the Dataflow load of a run, from launch to outcome.

- Cloud Storage object finalized (Eventarc): acts only on similarity manifests; launches
  the Dataflow Flex Template (locally: the Beam pipeline on the local runner) under a job
  name derived from the run and attempt.
- Dataflow's ``statusChanged`` event (Eventarc direct event): a load that ended FAILED or
  CANCELLED is a ``failed`` decision, then a relaunch as the next attempt, or the alert
  after the last (:mod:`simrec.stages.jobs`).

Which event goes where: :mod:`simrec.stages.routes`.
"""

import functions_framework
from cloudevents.http import CloudEvent

from simrec import logs
from simrec.stages import routes
from simrec.stages.decisions import Decision

logs.configure()


@functions_framework.cloud_event
def dataflow_launch(cloud_event: CloudEvent) -> Decision:
    return routes.handle("dataflow_launch", cloud_event)
