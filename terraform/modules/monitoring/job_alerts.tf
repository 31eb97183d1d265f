# A run given up: a Dataproc workflow or Dataflow job failed on every attempt. job_events
# (simrec.stages.jobs) logs that decision with alert = simrec.stages.decisions.JOB_GAVE_UP_ALERT;
# this log-match alert fires on exactly those lines (earlier failed attempts were retried
# automatically and only count in the failed-decisions metric).

locals {
  job_gave_up_alert  = "simrec-job-gave-up" # = simrec.stages.decisions.JOB_GAVE_UP_ALERT
  job_gave_up_filter = <<-EOT
    resource.type="cloud_run_revision"
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
    display_name = "job_events gave a run up"
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
