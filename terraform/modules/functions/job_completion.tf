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

  # Each job-end trigger: the function it delivers to, the CloudEvent attributes it matches
  # and, for a Pub/Sub trigger, its topic.
  job_end_triggers = {
    # Dataflow job status changes of this project and region -> dataflow_launch.
    dataflow_status = {
      function = "dataflow_launch"
      criteria = { type = local.dataflow_status_changed }
      topics   = []
    }
    # Dataproc workflow runs: the Admin Activity audit entries of InstantiateWorkflowTemplate
    # (always written) -> cluster, which acts on the operation's last one.
    dataproc_audit = {
      function = "cluster"
      criteria = { type = local.audit_log_written, serviceName = local.dataproc_service, methodName = local.instantiate_method }
      topics   = []
    }
    # The job-watch tick: Cloud Scheduler -> topic (both in modules/pubsub) -> cluster.
    job_watch = {
      function = "cluster"
      criteria = { type = local.pubsub_published }
      topics   = [var.job_watch_topic_id]
    }
  }
}

resource "google_eventarc_trigger" "job_end" {
  for_each = local.job_end_triggers

  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  service_account = var.service_accounts.trigger

  dynamic "matching_criteria" {
    for_each = each.value.criteria
    content {
      attribute = matching_criteria.key
      value     = matching_criteria.value
    }
  }
  event_data_content_type = "application/json"

  dynamic "transport" {
    for_each = each.value.topics
    content {
      pubsub {
        topic = transport.value
      }
    }
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.fn[each.value.function].service_config[0].service
      region  = var.region
    }
  }
}
