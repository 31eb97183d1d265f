output "data_bucket" {
  description = "Name of the data bucket."
  value       = google_storage_bucket.data.name
}

output "models_bucket" {
  description = "Name of the models bucket."
  value       = google_storage_bucket.models.name
}

output "staging_bucket" {
  description = "Name of the staging bucket."
  value       = google_storage_bucket.staging.name
}

output "repository_id" {
  description = "Full id of the Artifact Registry repository (projects/P/locations/L/repositories/R)."
  value       = google_artifact_registry_repository.images.id
}

output "repository_url" {
  description = "Docker host/path prefix of the repository."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
