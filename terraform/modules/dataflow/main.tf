# The Beam load as a Dataflow Flex Template, and the Datastore database it writes.
# The spec file is what `gcloud dataflow flex-template build` would write: the image (built
# from build/flex/Dockerfile by `make images`) plus build/flex/metadata.json. Terraform owns
# it, so SIMREC_FLEX_TEMPLATE_URI always names a spec of the deployed image.

locals {
  metadata_file = "${var.artifacts_dir}/flex/metadata.json"
  spec_object   = "artifacts/flex/simrec-load.json"

  # Without `make build` (static checks) the name alone keeps the file parseable; the
  # root's terraform_data.build stops a real plan.
  metadata = try(jsondecode(file(local.metadata_file)), { name = "simrec-load", parameters = [] })
}

resource "google_storage_bucket_object" "flex_spec" {
  bucket       = var.staging_bucket
  name         = local.spec_object
  content_type = "application/json"
  content = jsonencode({
    image    = var.flex_image
    sdkInfo  = { language = "PYTHON" }
    metadata = local.metadata
  })
}

# Firestore in Datastore mode: the neighbor lists (Beam WriteToDatastore). Only the
# (default) database is reachable by the Datastore clients without a database id.
resource "google_firestore_database" "datastore" {
  count = var.enable_datastore && var.create_datastore_database ? 1 : 0

  project                     = var.project_id
  name                        = "(default)"
  location_id                 = var.datastore_location
  type                        = "DATASTORE_MODE"
  concurrency_mode            = "OPTIMISTIC"
  app_engine_integration_mode = "DISABLED"
  delete_protection_state     = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy             = var.deletion_protection ? "ABANDON" : "DELETE"
}
