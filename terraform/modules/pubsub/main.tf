# The nightly topic with the Cloud Scheduler job that publishes to it (export listens), and
# the dead-letter topic that receives events the functions failed on after every retry.

resource "google_pubsub_topic" "nightly" {
  project = var.project_id
  name    = "${var.name_prefix}-nightly"

  # The payload is small and handled within minutes; an undelivered one is stale after a day.
  message_retention_duration = "86400s"
}

# Payload of the nightly run: {"tenant": "<tenant>"}; export fills in the date and the window.
resource "google_cloud_scheduler_job" "nightly" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-nightly-${var.tenant}"
  description = "Starts the nightly simrec run for tenant ${var.tenant}."
  schedule    = var.schedule
  time_zone   = var.schedule_time_zone

  retry_config {
    retry_count = 3
  }

  pubsub_target {
    topic_name = google_pubsub_topic.nightly.id
    data       = base64encode(jsonencode({ tenant = var.tenant }))
    attributes = { source = "cloud-scheduler" }
  }
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letter"
  message_retention_duration = "604800s"
}

# Messages published to a topic without subscription are lost: this one keeps them a week
# for inspection (gcloud pubsub subscriptions pull) and feeds the dead-letter alert.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub forwards dead letters as its service agent.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.pubsub_agent}"
}
