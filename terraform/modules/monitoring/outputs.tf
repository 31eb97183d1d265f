output "run_failed_policy" {
  description = "Alert policy of failed nightly runs."
  value       = google_monitoring_alert_policy.run_failed.name
}

output "uptime_check_id" {
  description = "Id of the endpoint's uptime check."
  value       = google_monitoring_uptime_check_config.endpoint.uptime_check_id
}
