output "workflow_template" {
  description = "Full name (id: projects/P/locations/R/workflowTemplates/T) and id (name: what the cluster function instantiates, SIMREC_DATAPROC_WORKFLOW_TEMPLATE) of the workflow template."
  value       = { id = google_dataproc_workflow_template.dimsum.id, name = google_dataproc_workflow_template.dimsum.name }
}

output "cluster_name_prefix" {
  description = "Name prefix of the managed clusters (Dataproc appends a suffix)."
  value       = local.cluster_name_prefix
}

output "build_files" {
  description = "Files of `make build` the module uploads (the root checks they exist)."
  value       = values(local.job_files)
}
