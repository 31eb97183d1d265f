# The filters of the alerts, in one place and from variables only: tests/test_alert_filters.py
# renders this file with Terraform and runs each filter on the log entries the handlers
# really write (and on the job and subscription series of a failed run).
#   failed_decision      a pipeline function logged a "failed" decision (simrec.stages.decisions:
#                        one JSON line per event; field names and values from
#                        terraform/contract.json, generated from simrec/deploy_contract.py)
#   dataproc_job_failed  the Dataproc similarity job failed (the workflow's managed clusters)
#   dataflow_job_failed  the Dataflow load failed (job names start with the launcher's prefix)
#   dead_lettered        an event was dead-lettered after every retry

locals {
  c = var.log_contract

  # Cloud Run labels log entries with the SHORT service name (resource.labels.service_name).
  service_filter = join(" OR ", [for s in values(var.function_services) : "\"${s}\""])

  filters = {
    # A log-match condition reads the log entries themselves: unlike a condition on a
    # log-based metric, it needs no metric that becomes queryable only minutes after creation.
    failed_decision = join("\n", [
      "resource.type=\"cloud_run_revision\"",
      "resource.labels.service_name=(${local.service_filter})",
      "severity=${local.c.failed_severity}",
      "jsonPayload.${local.c.action_field}=\"${local.c.failed_action}\"",
    ])
    dataproc_job_failed = join(" AND ", [
      "metric.type=\"dataproc.googleapis.com/cluster/job/failed_count\"",
      "resource.type=\"cloud_dataproc_cluster\"",
      "resource.label.cluster_name=starts_with(\"${var.dataproc_cluster_prefix}\")",
    ])
    dataflow_job_failed = join(" AND ", [
      "metric.type=\"dataflow.googleapis.com/job/is_failed\"",
      "resource.type=\"dataflow_job\"",
      "resource.label.job_name=starts_with(\"${local.c.dataflow_job_prefix}\")",
    ])
    dead_lettered = join(" AND ", [
      "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
      "resource.type=\"pubsub_subscription\"",
      "resource.label.subscription_id=\"${var.dead_letter_subscription}\"",
    ])
  }
}
