# Buckets (data, models, staging) and the Artifact Registry repository of the images.
# All buckets: uniform bucket-level access, public access prevention enforced, regional
# (in the region of the jobs that read them, so no cross-region egress).

locals {
  buckets = {
    data    = "${var.project_id}-${var.name_prefix}-data"
    models  = "${var.project_id}-${var.name_prefix}-models"
    staging = "${var.project_id}-${var.name_prefix}-staging"
  }
}

# exports/<tenant>/dt=.../ day partitions, exports/<tenant>/runs/<run_id>/ manifests and
# rejects, similarities/<tenant>/<run_id>/. Everything here can be rebuilt from BigQuery, so
# it has lifecycle rules instead of versioning.
resource "google_storage_bucket" "data" {
  name                        = local.buckets.data
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  # Day partitions are reused by later runs while they are inside the window.
  lifecycle_rule {
    condition {
      age            = var.export_retention_days
      matches_prefix = ["exports/"]
    }
    action {
      type = "Delete"
    }
  }

  # Similarities are loaded into a model the same night.
  lifecycle_rule {
    condition {
      age            = var.similarities_retention_days
      matches_prefix = ["similarities/"]
    }
    action {
      type = "Delete"
    }
  }

  # Uploads that a crashed export never finished.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}

# models/<tenant>/<version>/... (immutable) and models/<tenant>/LATEST (overwritten nightly).
# Versioning keeps the overwritten LATEST pointers, so a bad model is rolled back by
# restoring the previous LATEST; no age rule deletes live versions.
resource "google_storage_bucket" "models" {
  name                        = local.buckets.models
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = var.model_noncurrent_versions
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Function sources, Spark job files and the Flex Template spec under artifacts/ (kept:
# Terraform owns them); the Dataflow jobs' temp and staging files (temp_location and
# staging_location of the launcher, from terraform/contract.json) and Dataproc driver output
# (google-cloud-dataproc-metainfo/) expire. Dataproc's own temp bucket (Spark history) is
# the Dataproc-managed one, which has a 90-day TTL.
resource "google_storage_bucket" "staging" {
  name                        = local.buckets.staging
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  lifecycle_rule {
    condition {
      age            = var.staging_retention_days
      matches_prefix = concat([for d in var.dataflow_dirs : "${d}/"], ["google-cloud-dataproc-metainfo/"])
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = var.name_prefix
  format        = "DOCKER"
  description   = "simrec images: the recommend service, the Dataflow Flex Template and the function builds."

  # Every deploy pushes new tags; keep the recent ones for rollback.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }
}
