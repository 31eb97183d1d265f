output "buckets" {
  description = "Name of each bucket (data, models, staging)."
  value       = { for k, b in google_storage_bucket.bucket : k => b.name }
}

output "repository_id" {
  description = "Full id of the Artifact Registry repository (projects/P/locations/L/repositories/R)."
  value       = google_artifact_registry_repository.images.id
}

output "repository_url" {
  description = "Docker host/path prefix of the repository."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
