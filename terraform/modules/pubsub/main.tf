# The topics of the deployment and the Cloud Scheduler jobs that publish to them:
#   nightly     <- the nightly run's schedule; export listens
#   job_watch   <- a tick every few minutes; cluster polls the Dataproc workflows still
#                  running (modules/functions/job_completion.tf has the trigger)
#   dead_letter <- events the functions failed on after every retry

locals {
  # Each topic with how long an undelivered message is worth keeping.
  topics = {
    # The payload is small and handled within minutes; an undelivered one is stale after a day.
    nightly = { retention = "86400s" }
    # A tick is stale once the next one is due. The topic id ends in "-job-watch"
    # (simrec.stages.routes.JOB_WATCH): that is how cluster tells the tick apart.
    job_watch = { retention = "3600s" }
    # Kept a week for inspection (the subscription below).
    dead_letter = { retention = "604800s" }
  }

  # Each scheduled job: its topic is the topic of the same key.
  schedules = {
    # Payload of the nightly run: {"tenant": "<tenant>"}; export fills in the date and the window.
    nightly = {
      name        = "${var.name_prefix}-nightly-${var.tenant}"
      description = "Starts the nightly simrec run for tenant ${var.tenant}."
      schedule    = var.schedule
      time_zone   = var.schedule_time_zone
      retries     = [3]
      data        = base64encode(jsonencode({ tenant = var.tenant }))
      attributes  = { source = "cloud-scheduler" }
    }
    job_watch = {
      name        = "${var.name_prefix}-job-watch"
      description = "Makes the cluster function poll the Dataproc workflows still running."
      schedule    = var.job_watch_schedule
      time_zone   = "Etc/UTC"
      retries     = []
      data        = base64encode("{}")
      attributes  = null
    }
  }
}

resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  project                    = var.project_id
  name                       = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  message_retention_duration = each.value.retention
}

resource "google_cloud_scheduler_job" "job" {
  for_each = local.schedules

  project     = var.project_id
  region      = var.region
  name        = each.value.name
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  dynamic "retry_config" {
    for_each = each.value.retries
    content {
      retry_count = retry_config.value
    }
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic[each.key].id
    data       = each.value.data
    attributes = each.value.attributes
  }
}

# Messages published to a topic without subscription are lost: this one keeps them a week
# for inspection (gcloud pubsub subscriptions pull) and feeds the dead-letter alert.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.topic["dead_letter"].id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub forwards dead letters as its service agent.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.topic["dead_letter"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.pubsub_agent}"
}
