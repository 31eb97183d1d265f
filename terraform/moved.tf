# Addresses an older release of this configuration used, moved to where the same objects
# live now: `terraform apply` after an upgrade renames them in the state and recreates
# nothing (Terraform docs: refactoring, moved blocks). Keep each block: a deployment that
# skipped a release still needs it.

# One google_storage_bucket resource for the three buckets (modules/storage).
moved {
  from = module.storage.google_storage_bucket.data
  to   = module.storage.google_storage_bucket.bucket["data"]
}

moved {
  from = module.storage.google_storage_bucket.models
  to   = module.storage.google_storage_bucket.bucket["models"]
}

moved {
  from = module.storage.google_storage_bucket.staging
  to   = module.storage.google_storage_bucket.bucket["staging"]
}
