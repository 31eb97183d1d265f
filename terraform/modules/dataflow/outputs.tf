output "flex_template_uri" {
  description = "gs:// URI of the Flex Template spec (SIMREC_FLEX_TEMPLATE_URI)."
  value       = "gs://${google_storage_bucket_object.flex_spec.bucket}/${google_storage_bucket_object.flex_spec.name}"
}

output "build_files" {
  description = "Files of `make build` the module reads (the root checks they exist)."
  value       = [local.metadata_file]
}
