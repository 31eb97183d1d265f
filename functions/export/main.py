"""export: the nightly Pub/Sub message (from Cloud Scheduler) -> the run's export.

Runs the export SQL (BigQuery; locally DuckDB) for the run's window, writes the day
partitions, then the manifest that starts the next stage. A run whose export is complete
resumes at its first incomplete stage instead (``simrec cloud rerun``); ``"force": true``
starts a new attempt. A redelivered message (same event id) starts nothing new. Routing:
:mod:`simrec.stages.routes`.
"""

import functions_framework
from cloudevents.http import CloudEvent

from simrec import logs
from simrec.stages import routes
from simrec.stages.decisions import Decision

logs.configure()


@functions_framework.cloud_event
def export(cloud_event: CloudEvent) -> Decision:
    return routes.handle("export", cloud_event)
