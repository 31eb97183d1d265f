output "service" {
  description = "The recommend service: url (HTTPS), name (of the Cloud Run service) and api_keys_secret (resource name projects/P/secrets/S of the API keys in public mode, else empty: SIMREC_API_KEYS)."
  value = {
    url             = google_cloud_run_v2_service.recommend.uri
    name            = google_cloud_run_v2_service.recommend.name
    api_keys_secret = var.public ? "projects/${var.project_id}/secrets/${google_secret_manager_secret.api_keys[0].secret_id}" : ""
  }
}
