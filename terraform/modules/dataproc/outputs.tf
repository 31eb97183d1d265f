output "workflow_template_id" {
  description = "Full name of the workflow template (projects/P/locations/R/workflowTemplates/T)."
  value       = google_dataproc_workflow_template.dimsum.id
}

output "workflow_template_name" {
  description = "Id of the workflow template the cluster function instantiates (SIMREC_DATAPROC_WORKFLOW_TEMPLATE)."
  value       = google_dataproc_workflow_template.dimsum.name
}

output "cluster_name_prefix" {
  description = "Name prefix of the managed clusters (Dataproc appends a suffix)."
  value       = local.cluster_name_prefix
}

output "job_file_uris" {
  description = "gs:// URIs of the job's main file and py-files."
  value       = { for k, o in google_storage_bucket_object.job_file : k => "gs://${o.bucket}/${o.name}" }
}

output "build_files" {
  description = "Files of `make build` the module uploads (the root checks they exist)."
  value       = values(local.job_files)
}
