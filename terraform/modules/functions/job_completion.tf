# How each launched job ended (simrec.stages.jobs), delivered to the function that launched
# it, since its retry launches the job again (routing: simrec.stages.routes.ROUTES):
#   dataflow_launch <- Dataflow's direct event google.cloud.dataflow.job.v1beta3.statusChanged
#                      (Dataflow events are regional: the trigger is in var.region).
#   cluster         <- Dataproc has no Eventarc direct event: the function polls the workflow
#                      operation (done, error, WorkflowMetadata) of every run still recorded
#                      as running when Dataproc's Admin Activity audit log records the end of
#                      that operation (InstantiateWorkflowTemplate is a long-running method),
#                      and on a Cloud Scheduler tick on the job-watch topic, which bounds the
#                      delay should an end entry be missing (LRO methods "usually" log it).
# The triggers run as the trigger identity, like the functions' own triggers: it already
# holds roles/eventarc.eventReceiver (iam module) and run.invoker on exactly these two
# services (trigger_invoker in main.tf), and Pub/Sub may mint its token for the push.
# The functions keep their own identities; what their retry/watch logic adds (writing the
# job records under jobs/ of the data bucket) is granted in the iam module, before the wait.

locals {
  dataflow_status_changed = "google.cloud.dataflow.job.v1beta3.statusChanged"
  audit_log_written       = "google.cloud.audit.log.v1.written"
  dataproc_service        = "dataproc.googleapis.com"
  instantiate_method      = "google.cloud.dataproc.v1.WorkflowTemplateService.InstantiateWorkflowTemplate"
  job_completion_services = {
    cluster         = google_cloudfunctions2_function.fn["cluster"].service_config[0].service
    dataflow_launch = google_cloudfunctions2_function.fn["dataflow_launch"].service_config[0].service
  }
}

# Dataflow job status changes of this project and region -> dataflow_launch.
resource "google_eventarc_trigger" "dataflow_status" {
  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-dataflow-status"
  service_account = var.service_accounts.trigger

  matching_criteria {
    attribute = "type"
    value     = local.dataflow_status_changed
  }
  event_data_content_type = "application/json"

  destination {
    cloud_run_service {
      service = local.job_completion_services.dataflow_launch
      region  = var.region
    }
  }
}

# Dataproc workflow runs: the Admin Activity audit entries of InstantiateWorkflowTemplate
# (always written) -> cluster, which acts on the operation's last one.
resource "google_eventarc_trigger" "dataproc_audit" {
  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-dataproc-audit"
  service_account = var.service_accounts.trigger

  matching_criteria {
    attribute = "type"
    value     = local.audit_log_written
  }
  matching_criteria {
    attribute = "serviceName"
    value     = local.dataproc_service
  }
  matching_criteria {
    attribute = "methodName"
    value     = local.instantiate_method
  }
  event_data_content_type = "application/json"

  destination {
    cloud_run_service {
      service = local.job_completion_services.cluster
      region  = var.region
    }
  }
}

# The job-watch tick: Cloud Scheduler -> topic (both in modules/pubsub) -> trigger -> cluster.
resource "google_eventarc_trigger" "job_watch" {
  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-job-watch"
  service_account = var.service_accounts.trigger

  matching_criteria {
    attribute = "type"
    value     = local.pubsub_published
  }
  event_data_content_type = "application/json"

  transport {
    pubsub {
      topic = var.job_watch_topic_id
    }
  }

  destination {
    cloud_run_service {
      service = local.job_completion_services.cluster
      region  = var.region
    }
  }
}
