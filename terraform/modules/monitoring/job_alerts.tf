# The paging alert for a failed job: a Dataproc workflow or Dataflow job of the nightly run
# failed on every attempt (simrec.stages.jobs). The function that launched the job (cluster
# or dataflow_launch) logs that decision with alert = simrec.stages.decisions.JOB_GAVE_UP_ALERT;
# this log-match alert fires on exactly those lines. An earlier failed attempt is retried
# automatically: its line (same stage, no alert) pages nobody.
#
# Not paging twice: the run_failed policy of main.tf (owned elsewhere) still counts every
# "failed" line of the functions and has two first-attempt conditions (Dataproc job
# failed_count, Dataflow is_failed). With job ends now logged by cluster / dataflow_launch,
# those fire on an attempt that is being retried. The change main.tf needs, stated here
# next to the constants it uses:
#   - failed_decisions filter: add the line  NOT jsonPayload.stage="${local.job_end_stage}"
#   - drop the conditions "The Dataproc similarity job failed" and "The Dataflow load
#     failed": every job end reaches a function (Dataflow's event, Dataproc's operation,
#     polled at least every job_watch_schedule), and a delivery that fails every retry is
#     dead-lettered, which run_failed's dead-letter condition still pages on.
# tests/test_job_events.py::test_a_retried_attempt_pages_nobody_and_giving_up_pages_once
# is marked xfail (strict) until main.tf has it.

locals {
  job_gave_up_alert  = "simrec-job-gave-up" # = simrec.stages.decisions.JOB_GAVE_UP_ALERT
  job_end_stage      = "job_events"         # = simrec.stages.jobs.STAGE
  job_gave_up_filter = <<-EOT
    resource.type="cloud_run_revision"
    jsonPayload.stage="${local.job_end_stage}"
    jsonPayload.alert="${local.job_gave_up_alert}"
  EOT
}

resource "google_monitoring_alert_policy" "job_gave_up" {
  project               = var.project_id
  display_name          = "simrec: a nightly job failed on every attempt"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A Dataproc similarity workflow or Dataflow load of the nightly run failed, was retried
      automatically, and failed on its last attempt. The model of the last good run keeps
      serving. The log line (jsonPayload.alert="${local.job_gave_up_alert}") names the run
      (run_id, tenant), the job (ids.job_id, ids.stage) and its error (ids.error). Once the
      cause is fixed, rerun the night: `simrec cloud rerun --date <run date> --tenant <tenant>`.
    EOT
  }

  conditions {
    display_name = "A job failed on its last attempt"
    condition_matched_log {
      filter = local.job_gave_up_filter
      label_extractors = {
        run_id = "EXTRACT(jsonPayload.run_id)"
        tenant = "EXTRACT(jsonPayload.tenant)"
        stage  = "EXTRACT(jsonPayload.ids.stage)"
      }
    }
  }

  alert_strategy {
    # Required for log-match conditions: at most one notification per 5 minutes.
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "86400s"
  }
}
