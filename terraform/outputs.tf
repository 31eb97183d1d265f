# Outputs `make` and docs/deploy.md read one by one (terraform output -raw NAME) stand alone;
# what describes the deployment's parts is grouped by kind.

output "endpoint_url" {
  description = "URL of the recommend service (GET /healthz answers when a model is loaded)."
  value       = module.serving.service.url
}

output "api_keys_secret" {
  description = "Secret Manager secret of the per-shop API keys in public mode (add a version to rotate them), else empty."
  value       = module.serving.service.api_keys_secret
}

output "recommend_image" {
  description = "Image the recommend service runs (make images pushes it)."
  value       = local.recommend_image
}

output "flex_image" {
  description = "Image of the Dataflow Flex Template (make images pushes it)."
  value       = local.flex_image
}

output "project_id" {
  description = "Project of the deployment (make images builds there)."
  value       = var.project_id
}

output "region" {
  description = "Region of the deployment."
  value       = var.region
}

output "buckets" {
  description = "Bucket names: data (exports/ and similarities/, SIMREC_DATA_URI), models (models/<tenant>/<version>/ and LATEST, SIMREC_MODELS_URI), staging (function sources, Spark job files, the Flex Template spec, job temp files)."
  value       = module.storage.buckets
}

output "topics" {
  description = "Pub/Sub topics: nightly (the scheduler publishes the nightly payload, export listens) and dead_letter (events no function could handle after the retries)."
  value       = { nightly = module.pubsub.topics.nightly.name, dead_letter = module.pubsub.topics.dead_letter.name }
}

output "job_templates" {
  description = "What the launchers start: flex_template_uri (the Flex Template spec, SIMREC_FLEX_TEMPLATE_URI), dataproc_workflow_template (full name) and dataproc_workflow_template_name (id, SIMREC_DATAPROC_WORKFLOW_TEMPLATE)."
  value = {
    flex_template_uri               = module.dataflow.flex_template_uri
    dataproc_workflow_template      = module.dataproc.workflow_template.id
    dataproc_workflow_template_name = module.dataproc.workflow_template.name
  }
}

output "repository_url" {
  description = "Artifact Registry repository for the recommend and Flex Template images."
  value       = module.storage.repository_url
}

output "service_accounts" {
  description = "E-mail of each identity (one per function, Dataproc, Dataflow, recommend, trigger, build)."
  value       = module.iam.emails
}

output "settings_env" {
  description = "The SIMREC_* environment every function and the recommend service get."
  value       = local.environment
}
