# Buckets (data, models, staging) and the Artifact Registry repository of the images.
# Every bucket: uniform bucket-level access, public access prevention enforced, regional
# (in the region of the jobs that read them, so no cross-region egress); what differs is
# each bucket's versioning and lifecycle rules, in local.buckets.

locals {
  buckets = {
    # exports/<tenant>/dt=.../ day partitions, exports/<tenant>/runs/<run_id>/ manifests and
    # rejects, similarities/<tenant>/<run_id>/. Everything here can be rebuilt from BigQuery,
    # so it has lifecycle rules instead of versioning.
    data = {
      versioning = false
      lifecycle_rules = [
        # Day partitions are reused by later runs while they are inside the window.
        { action = "Delete", age = var.export_retention_days, matches_prefix = ["exports/"] },
        # Similarities are loaded into a model the same night.
        { action = "Delete", age = var.similarities_retention_days, matches_prefix = ["similarities/"] },
        # Uploads that a crashed export never finished.
        { action = "AbortIncompleteMultipartUpload", age = 1 },
      ]
    }
    # models/<tenant>/<version>/... (immutable) and models/<tenant>/LATEST (overwritten
    # nightly). Versioning keeps the overwritten LATEST pointers, so a bad model is rolled
    # back by restoring the previous LATEST; no age rule deletes live versions.
    models = {
      versioning = true
      lifecycle_rules = [
        { action = "Delete", num_newer_versions = var.model_noncurrent_versions, with_state = "ARCHIVED" },
      ]
    }
    # Function sources, Spark job files and the Flex Template spec under artifacts/ (kept:
    # Terraform owns them); the Dataflow jobs' temp and staging files (temp_location and
    # staging_location of the launcher, from terraform/contract.json) and Dataproc driver
    # output (google-cloud-dataproc-metainfo/) expire. Dataproc's own temp bucket (Spark
    # history) is the Dataproc-managed one, which has a 90-day TTL.
    staging = {
      versioning = false
      lifecycle_rules = [
        {
          action         = "Delete"
          age            = var.staging_retention_days
          matches_prefix = concat([for d in var.dataflow_dirs : "${d}/"], ["google-cloud-dataproc-metainfo/"])
        },
      ]
    }
  }
}

# The buckets were one resource each before (google_storage_bucket.data, .models, .staging):
# terraform/moved.tf moves them to these keys, so an upgrade renames state and never
# recreates a bucket (the models bucket holds the served versions).
resource "google_storage_bucket" "bucket" {
  for_each = local.buckets

  name                        = "${var.project_id}-${var.name_prefix}-${each.key}"
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  dynamic "versioning" {
    for_each = each.value.versioning ? [true] : []
    content {
      enabled = versioning.value
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.lifecycle_rules
    content {
      condition {
        age                = try(lifecycle_rule.value.age, null)
        matches_prefix     = try(lifecycle_rule.value.matches_prefix, null)
        num_newer_versions = try(lifecycle_rule.value.num_newer_versions, null)
        with_state         = try(lifecycle_rule.value.with_state, null)
      }
      action {
        type = lifecycle_rule.value.action
      }
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
