"""export: the nightly Pub/Sub message (from Cloud Scheduler) -> the run's export.

Runs the export SQL (BigQuery; locally DuckDB) for the run's window, writes the day
partitions, then the manifest that starts the next stage. A redelivered message finds
the run's manifest (or, on BigQuery, its job) and starts nothing new. Routing:
:mod:`simrec.stages.routes`.
"""

import functions_framework
from cloudevents.http import CloudEvent

from simrec.stages import routes
from simrec.stages.decisions import Decision


@functions_framework.cloud_event
def export(cloud_event: CloudEvent) -> Decision:
    return routes.handle("export", cloud_event)
