output "url" {
  description = "HTTPS URL of the service."
  value       = google_cloud_run_v2_service.recommend.uri
}

output "service_name" {
  description = "Name of the Cloud Run service."
  value       = google_cloud_run_v2_service.recommend.name
}
