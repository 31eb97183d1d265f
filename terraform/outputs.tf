output "endpoint_url" {
  description = "URL of the recommend service (GET /healthz answers when a model is loaded)."
  value       = module.serving.url
}

output "api_keys_secret" {
  description = "Secret Manager secret of the per-shop API keys in public mode (add a version to rotate them), else empty."
  value       = module.serving.api_keys_secret
}

output "data_bucket" {
  description = "Bucket of exports/ and similarities/ (SIMREC_DATA_URI)."
  value       = module.storage.buckets.data
}

output "models_bucket" {
  description = "Bucket of models/<tenant>/<version>/ and models/<tenant>/LATEST (SIMREC_MODELS_URI)."
  value       = module.storage.buckets.models
}

output "staging_bucket" {
  description = "Bucket of function sources, Spark job files, the Flex Template spec and job temp files."
  value       = module.storage.buckets.staging
}

output "nightly_topic" {
  description = "Pub/Sub topic the scheduler publishes the nightly payload to (export listens)."
  value       = module.pubsub.nightly_topic_name
}

output "dead_letter_topic" {
  description = "Pub/Sub topic that receives events no function could handle after the retries."
  value       = module.pubsub.dead_letter_topic_name
}

output "repository_url" {
  description = "Artifact Registry repository for the recommend and Flex Template images."
  value       = module.storage.repository_url
}

output "recommend_image" {
  description = "Image the recommend service runs (make images pushes it)."
  value       = local.recommend_image
}

output "flex_image" {
  description = "Image of the Dataflow Flex Template (make images pushes it)."
  value       = local.flex_image
}

output "flex_template_uri" {
  description = "Flex Template spec file (SIMREC_FLEX_TEMPLATE_URI)."
  value       = module.dataflow.flex_template_uri
}

output "dataproc_workflow_template" {
  description = "Full name of the Dataproc workflow template of the similarity job."
  value       = module.dataproc.workflow_template_id
}

output "dataproc_workflow_template_name" {
  description = "Id of the workflow template (SIMREC_DATAPROC_WORKFLOW_TEMPLATE)."
  value       = module.dataproc.workflow_template_name
}

output "service_accounts" {
  description = "E-mail of each identity (one per function, Dataproc, Dataflow, recommend, trigger, build)."
  value       = module.iam.emails
}

output "settings_env" {
  description = "The SIMREC_* environment every function and the recommend service get."
  value       = local.environment
}

output "project_id" {
  description = "Project of the deployment (make images builds there)."
  value       = var.project_id
}

output "region" {
  description = "Region of the deployment."
  value       = var.region
}
