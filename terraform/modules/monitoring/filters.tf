# The filters of the alerts, in one place and from variables only: tests/cloud/test_alert_filters.py
# renders this file with Terraform and runs each filter on the log entries the handlers
# really write (and on the job and subscription series of a failed run).
#   failed_decision      a pipeline function logged a "failed" decision (simrec.stages.decisions:
#                        one JSON line per event; field names and values from
#                        terraform/contract.json, generated from simrec/deploy_contract.py),
#                        except a launched job's end: a failed attempt is retried, and only
#                        the last one pages, through job_gave_up (simrec.stages.jobs)
#   job_gave_up          a job failed on its last attempt: the run gave up
#   dead_lettered        an event was dead-lettered after every retry (also a job-end
#                        delivery that failed every time)

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
      "NOT jsonPayload.${local.c.stage_field}=\"${local.c.job_end_stage}\"",
    ])
    job_gave_up = join("\n", [
      "resource.type=\"cloud_run_revision\"",
      "resource.labels.service_name=(${local.service_filter})",
      "severity=${local.c.failed_severity}",
      "jsonPayload.${local.c.stage_field}=\"${local.c.job_end_stage}\"",
      "jsonPayload.${local.c.alert_field}=\"${local.c.job_gave_up_alert}\"",
    ])
    dead_lettered = join(" AND ", [
      "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
      "resource.type=\"pubsub_subscription\"",
      "resource.label.subscription_id=\"${var.dead_letter_subscription}\"",
    ])
  }
}
