output "run_failed_policy" {
  description = "Alert policy of failed nightly jobs and dead-lettered events."
  value       = google_monitoring_alert_policy.run_failed.name
}

output "function_failed_policy" {
  description = "Alert policy of a pipeline function that failed on an event."
  value       = google_monitoring_alert_policy.function_failed.name
}

output "uptime_check_id" {
  description = "Id of the endpoint's uptime check."
  value       = google_monitoring_uptime_check_config.endpoint.uptime_check_id
}
