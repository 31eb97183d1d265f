output "topics" {
  description = "Full id (projects/P/topics/T) and short name of the nightly and the dead-letter topic; dead_letter.subscription: short name of the subscription that keeps dead letters."
  value = {
    nightly     = { id = google_pubsub_topic.nightly.id, name = google_pubsub_topic.nightly.name }
    dead_letter = { id = google_pubsub_topic.dead_letter.id, name = google_pubsub_topic.dead_letter.name, subscription = google_pubsub_subscription.dead_letter.name }
  }
}
