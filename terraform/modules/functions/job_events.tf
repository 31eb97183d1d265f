# job_events: how each launched job ended (simrec.stages.jobs): one decision per failed job,
# a retry with the next attempt's job ids, and after the last attempt the alert line.
#   Dataflow: Eventarc's direct event google.cloud.dataflow.job.v1beta3.statusChanged (the
#             Job resource; Dataflow events are regional, so the trigger is in var.region).
#   Dataproc: no Eventarc direct event exists; the function polls the workflow operation
#             (done, error, WorkflowMetadata) of every run still recorded as running when
#             Dataproc's Admin Activity audit log records the end of that operation
#             (InstantiateWorkflowTemplate is a long-running method), and on a Cloud
#             Scheduler tick on the job-watch topic, which bounds the delay should an end
#             entry be missing (LRO methods "usually" log their end).
# The function's identity (service_accounts.job_events) is made by the iam module.

variable "job_watch_schedule" {
  description = "How often the Dataproc workflows still running are polled (cron, UTC)."
  type        = string
  default     = "*/10 * * * *"
}

locals {
  job_events_name         = "${var.name_prefix}-job-events"
  job_events_source       = "${var.artifacts_dir}/functions/job_events.zip"
  dataflow_status_changed = "google.cloud.dataflow.job.v1beta3.statusChanged"
  audit_log_written       = "google.cloud.audit.log.v1.written"
  instantiate_method      = "google.cloud.dataproc.v1.WorkflowTemplateService.InstantiateWorkflowTemplate"
}

resource "google_storage_bucket_object" "job_events_source" {
  bucket = var.staging_bucket
  name   = "artifacts/functions/job_events-${try(filemd5(local.job_events_source), "missing")}.zip"
  source = local.job_events_source

  lifecycle {
    precondition {
      condition     = fileexists(local.job_events_source)
      error_message = "${local.job_events_source} is missing: run `make build` first (or set artifacts_dir)."
    }
  }
}

resource "google_cloudfunctions2_function" "job_events" {
  project     = var.project_id
  location    = var.region
  name        = local.job_events_name
  description = "Job ends (Dataflow status events, Dataproc workflow polls) -> failed decision, retry, alert."

  build_config {
    runtime           = var.runtime
    entry_point       = "job_events" # functions/job_events/main.py
    service_account   = "projects/${var.project_id}/serviceAccounts/${var.service_accounts.build}"
    docker_repository = var.repository_id

    source {
      storage_source {
        bucket = var.staging_bucket
        object = google_storage_bucket_object.job_events_source.name
      }
    }
  }

  service_config {
    service_account_email = var.service_accounts.job_events
    available_memory      = lookup(var.memory, "job_events", "512M")
    available_cpu         = "1"
    timeout_seconds       = var.timeout_seconds
    min_instance_count    = 0
    # One instance, one event at a time: two ticks never decide the same workflow twice.
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    environment_variables            = var.environment
  }
}

# Dataflow job status changes of this project and region.
resource "google_eventarc_trigger" "dataflow_status" {
  project         = var.project_id
  location        = var.region
  name            = "${local.job_events_name}-dataflow"
  service_account = var.service_accounts.trigger

  matching_criteria {
    attribute = "type"
    value     = local.dataflow_status_changed
  }
  event_data_content_type = "application/json"

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.job_events.service_config[0].service
      region  = var.region
    }
  }
}

# Dataproc workflow runs: the Admin Activity audit entries of InstantiateWorkflowTemplate
# (always written); the function acts on the operation's last one.
resource "google_eventarc_trigger" "dataproc_audit" {
  project         = var.project_id
  location        = var.region
  name            = "${local.job_events_name}-dataproc"
  service_account = var.service_accounts.trigger

  matching_criteria {
    attribute = "type"
    value     = local.audit_log_written
  }
  matching_criteria {
    attribute = "serviceName"
    value     = "dataproc.googleapis.com"
  }
  matching_criteria {
    attribute = "methodName"
    value     = local.instantiate_method
  }
  event_data_content_type = "application/json"

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.job_events.service_config[0].service
      region  = var.region
    }
  }
}

# The job-watch tick: Cloud Scheduler -> topic -> trigger.
resource "google_pubsub_topic" "job_watch" {
  project = var.project_id
  name    = "${var.name_prefix}-job-watch"

  # A tick is stale once the next one is due.
  message_retention_duration = "3600s"
}

resource "google_cloud_scheduler_job" "job_watch" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-job-watch"
  description = "Makes job_events poll the Dataproc workflows still running."
  schedule    = var.job_watch_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.job_watch.id
    data       = base64encode("{}")
    attributes = { source = "cloud-scheduler" }
  }
}

resource "google_eventarc_trigger" "job_watch" {
  project         = var.project_id
  location        = var.region
  name            = "${local.job_events_name}-watch"
  service_account = var.service_accounts.trigger

  matching_criteria {
    attribute = "type"
    value     = local.pubsub_published
  }
  event_data_content_type = "application/json"

  transport {
    pubsub {
      topic = google_pubsub_topic.job_watch.id
    }
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.job_events.service_config[0].service
      region  = var.region
    }
  }
}

# The trigger identity (roles/eventarc.eventReceiver on the project, granted by the iam
# module) may invoke the job_events service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "job_events_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.job_events.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.service_accounts.trigger}"
}

# As for the other triggers: dead-letter topic and backoff on the subscriptions Eventarc made.
resource "terraform_data" "job_events_dead_letter" {
  for_each = {
    dataflow_status = google_eventarc_trigger.dataflow_status.id
    dataproc_audit  = google_eventarc_trigger.dataproc_audit.id
    job_watch       = google_eventarc_trigger.job_watch.id
  }

  triggers_replace = [
    each.value,
    var.dead_letter_topic_id,
    var.max_delivery_attempts,
    var.retry_delay.min,
    var.retry_delay.max,
  ]

  provisioner "local-exec" {
    command = "${path.module}/scripts/attach-dead-letter.sh"
    environment = {
      PROJECT               = var.project_id
      REGION                = var.region
      TRIGGER               = each.value
      DEAD_LETTER_TOPIC     = var.dead_letter_topic_id
      MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
      MIN_RETRY_DELAY       = var.retry_delay.min
      MAX_RETRY_DELAY       = var.retry_delay.max
      PUBSUB_AGENT          = "service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    }
  }
}

output "job_events_service" {
  description = "Cloud Run service of the job_events function (where its decision lines are logged)."
  value       = google_cloudfunctions2_function.job_events.service_config[0].service
}
