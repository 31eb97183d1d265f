output "nightly_topic_id" {
  description = "Full id of the nightly topic (projects/P/topics/T)."
  value       = google_pubsub_topic.nightly.id
}

output "nightly_topic_name" {
  description = "Short name of the nightly topic."
  value       = google_pubsub_topic.nightly.name
}

output "dead_letter_topic_id" {
  description = "Full id of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_topic_name" {
  description = "Short name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription_name" {
  description = "Short name of the subscription that keeps dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}

output "scheduler_job" {
  description = "Name of the nightly Cloud Scheduler job."
  value       = google_cloud_scheduler_job.nightly.name
}
