# Alerts: one policy for a pipeline function that failed on an event, one for a dead-lettered
# event, one for a job that failed on its last attempt (job_alerts.tf), one for the endpoint
# being down. Their filters are in filters.tf. A failed job attempt pages only through
# job_gave_up: the function that launched it logs its end (Dataflow's status event, the
# Dataproc workflow's operation) and retries it; a job-end delivery that fails every time
# is dead-lettered, which run_failed pages on.

locals {
  channels      = [for c in google_monitoring_notification_channel.email : c.id]
  endpoint_host = trimprefix(var.endpoint_url, "https://")
  uptime_agent  = "serviceAccount:${var.monitoring_agent}"
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "simrec alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_alert_policy" "function_failed" {
  project               = var.project_id
  display_name          = "simrec: pipeline function failed"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A simrec pipeline function failed on an event (stage $${log.extracted_label.stage}, run
      $${log.extracted_label.run_id}). The model of the last good run keeps serving. Find the
      line in Cloud Logging with `jsonPayload.${local.c.action_field}="${local.c.failed_action}"`;
      Eventarc retries the delivery, then dead-letters it. Handlers are idempotent: re-run
      with `gcloud scheduler jobs run` once the cause is fixed.
    EOT
  }

  conditions {
    display_name = "A pipeline function logged a failed decision"
    condition_matched_log {
      filter = local.filters.failed_decision
      label_extractors = {
        stage  = "EXTRACT(jsonPayload.${local.c.stage_field})"
        run_id = "EXTRACT(jsonPayload.${local.c.run_id_field})"
      }
    }
  }

  # Required of log-match conditions: at most one notification per period.
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "86400s"
  }
}

resource "google_monitoring_alert_policy" "run_failed" {
  project               = var.project_id
  display_name          = "simrec: nightly event dead-lettered"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      An event of the nightly simrec run failed every delivery and was dead-lettered to
      `${var.dead_letter_subscription}`: a stage, or the handling of a job's end (the Dataproc
      workflow, clusters named ${var.dataproc_cluster_prefix}-*; the Dataflow job, named
      ${local.c.dataflow_job_prefix}*), never ran to a decision. The model of the last good
      run keeps serving. Handlers are idempotent: once the cause is fixed, rerun the night
      (`simrec cloud rerun --date <run date> --tenant <tenant>`).
    EOT
  }

  conditions {
    display_name = "An event was dead-lettered"
    condition_threshold {
      filter          = local.filters.dead_lettered
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

# The uptime checkers call the private endpoint with an OIDC token of the monitoring agent.
resource "google_cloud_run_v2_service_iam_member" "uptime_invoker" {
  count = var.public_endpoint ? 0 : 1

  project  = var.project_id
  location = var.region
  name     = var.service_name
  role     = "roles/run.invoker"
  member   = local.uptime_agent
}

# The grant is used by the first probe: wait for it as for the grants of modules/iam.
resource "time_sleep" "uptime_invoker" {
  create_duration = var.propagation_wait

  depends_on = [google_cloud_run_v2_service_iam_member.uptime_invoker]
}

# GET /healthz is 200 only while a model is loaded, so this also catches a service that
# lost its model or never got one.
resource "google_monitoring_uptime_check_config" "endpoint" {
  project      = var.project_id
  display_name = "simrec recommend /healthz"
  timeout      = "10s"
  period       = var.uptime_check_period

  http_check {
    path           = "/healthz"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"

    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }

    dynamic "service_agent_authentication" {
      for_each = var.public_endpoint ? [] : [1]
      content {
        type = "OIDC_TOKEN"
      }
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = local.endpoint_host
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.uptime_invoker, time_sleep.uptime_invoker]
}

resource "google_monitoring_alert_policy" "endpoint_down" {
  project               = var.project_id
  display_name          = "simrec: recommend endpoint down"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "GET /healthz on ${var.endpoint_url} fails from several regions: the service is down or has no model (a new deployment has none until its first nightly run)."
  }

  conditions {
    display_name = "Uptime check failing"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.endpoint.uptime_check_id}\" AND resource.type=\"uptime_url\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "600s"
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

# Cloud Run writes one request log entry per request: at 5 million requests a day that is
# about 100 GiB a month of billed ingestion. Keep errors and a sample of the rest; request
# counts and latencies come from Cloud Run's metrics, not from these logs.
resource "google_logging_project_exclusion" "request_logs" {
  count = var.request_log_keep_ratio < 1 ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}-recommend-request-sample"
  description = "Drop ${100 - var.request_log_keep_ratio * 100}% of the recommend service's successful request logs."
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${var.service_name}"
    logName="projects/${var.project_id}/logs/run.googleapis.com%2Frequests"
    severity<ERROR
    sample(insertId, ${1 - var.request_log_keep_ratio})
  EOT
}
