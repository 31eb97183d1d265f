output "topics" {
  description = "Full id (projects/P/topics/T) and short name of each topic (nightly, job_watch, dead_letter)."
  value       = { for k, t in google_pubsub_topic.topic : k => { id = t.id, name = t.name } }
}

output "dead_letter_subscription_name" {
  description = "Short name of the subscription that keeps dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}
