output "url" {
  description = "HTTPS URL of the service."
  value       = google_cloud_run_v2_service.recommend.uri
}

output "service_name" {
  description = "Name of the Cloud Run service."
  value       = google_cloud_run_v2_service.recommend.name
}

output "api_keys_secret" {
  description = "Resource name of the API keys secret (projects/P/secrets/S) in public mode, else empty (SIMREC_API_KEYS)."
  value       = var.public ? "projects/${var.project_id}/secrets/${google_secret_manager_secret.api_keys[0].secret_id}" : ""
}
