# The paging alert for a failed job: a Dataproc workflow or Dataflow job of the nightly run
# failed on every attempt (simrec.stages.jobs). The function that launched the job (cluster
# or dataflow_launch) logs that decision with alert = simrec.stages.decisions.JOB_GAVE_UP_ALERT;
# this log-match alert fires on exactly those lines. An earlier failed attempt is retried
# automatically: its line (same stage, no alert) pages nobody.
#
# Not paging twice: local.filters.failed_decision (function_failed) leaves job-end lines out,
# and run_failed has no job-failure condition (every job end reaches the function that
# launched it; a delivery that fails every retry is dead-lettered, which it pages on).
# Field names and values: terraform/contract.json (simrec/deploy_contract.py).

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
      serving. The log line (jsonPayload.${local.c.alert_field}="${local.c.job_gave_up_alert}")
      names the run (run_id, tenant), the job (ids.job_id, ids.stage) and its error
      (ids.error). Once the cause is fixed, rerun the night:
      `simrec cloud rerun --date <run date> --tenant <tenant>`.
    EOT
  }

  conditions {
    display_name = "A job failed on its last attempt"
    condition_matched_log {
      filter = local.filters.job_gave_up
      label_extractors = {
        run_id = "EXTRACT(jsonPayload.${local.c.run_id_field})"
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
