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

# One resource per kind of place a grant is on, for_each over local.grants (modules/iam).
moved {
  from = module.iam.google_project_iam_member.export_job_user
  to   = module.iam.google_project_iam_member.grant["export_job_user"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.export_data_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["export_data_writer"]
}

moved {
  from = module.iam.google_project_iam_member.cluster_workflow_runner
  to   = module.iam.google_project_iam_member.grant["cluster_workflow_runner"]
}

moved {
  from = module.iam.google_service_account_iam_member.cluster_acts_as_dataproc
  to   = module.iam.google_service_account_iam_member.grant["cluster_acts_as_dataproc"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.cluster_data_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["cluster_data_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.cluster_job_records_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["cluster_job_records_writer"]
}

moved {
  from = module.iam.google_project_iam_member.launch_dataflow_developer
  to   = module.iam.google_project_iam_member.grant["launch_dataflow_developer"]
}

moved {
  from = module.iam.google_service_account_iam_member.launch_acts_as_dataflow
  to   = module.iam.google_service_account_iam_member.grant["launch_acts_as_dataflow"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.launch_staging_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["launch_staging_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.launch_data_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["launch_data_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.launch_models_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["launch_models_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.launch_job_records_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["launch_job_records_writer"]
}

moved {
  from = module.iam.google_project_iam_member.dataproc_worker
  to   = module.iam.google_project_iam_member.grant["dataproc_worker"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataproc_data_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["dataproc_data_writer"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataproc_staging_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["dataproc_staging_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataproc_staging_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["dataproc_staging_writer"]
}

moved {
  from = module.iam.google_project_iam_member.dataflow_worker
  to   = module.iam.google_project_iam_member.grant["dataflow_worker"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataflow_data_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["dataflow_data_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataflow_models_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["dataflow_models_writer"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataflow_staging_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["dataflow_staging_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.dataflow_staging_writer
  to   = module.iam.google_storage_bucket_iam_member.grant["dataflow_staging_writer"]
}

moved {
  from = module.iam.google_artifact_registry_repository_iam_member.dataflow_image_reader
  to   = module.iam.google_artifact_registry_repository_iam_member.grant["dataflow_image_reader"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.recommend_models_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["recommend_models_reader"]
}

moved {
  from = module.iam.google_project_iam_member.trigger_event_receiver
  to   = module.iam.google_project_iam_member.grant["trigger_event_receiver"]
}

moved {
  from = module.iam.google_service_account_iam_member.pubsub_token_creator
  to   = module.iam.google_service_account_iam_member.grant["pubsub_token_creator"]
}

moved {
  from = module.iam.google_project_iam_member.eventarc_agent
  to   = module.iam.google_project_iam_member.grant["eventarc_agent"]
}

moved {
  from = module.iam.google_project_iam_member.gcs_agent_publisher
  to   = module.iam.google_project_iam_member.grant["gcs_agent_publisher"]
}

moved {
  from = module.iam.google_project_iam_member.build_log_writer
  to   = module.iam.google_project_iam_member.grant["build_log_writer"]
}

moved {
  from = module.iam.google_artifact_registry_repository_iam_member.build_image_writer
  to   = module.iam.google_artifact_registry_repository_iam_member.grant["build_image_writer"]
}

moved {
  from = module.iam.google_storage_bucket_iam_member.build_source_reader
  to   = module.iam.google_storage_bucket_iam_member.grant["build_source_reader"]
}

moved {
  from = module.iam.google_project_iam_member.build_gcf_sources_reader
  to   = module.iam.google_project_iam_member.grant["build_gcf_sources_reader"]
}

moved {
  from = module.iam.google_project_iam_member.dataflow_datastore_user[0]
  to   = module.iam.google_project_iam_member.grant["dataflow_datastore_user"]
}

moved {
  from = module.iam.google_project_iam_member.recommend_datastore_viewer[0]
  to   = module.iam.google_project_iam_member.grant["recommend_datastore_viewer"]
}

# The topics and scheduler jobs: one resource each, for_each in modules/pubsub (the job-watch
# pair came from modules/functions).
moved {
  from = module.pubsub.google_pubsub_topic.nightly
  to   = module.pubsub.google_pubsub_topic.topic["nightly"]
}

moved {
  from = module.pubsub.google_pubsub_topic.dead_letter
  to   = module.pubsub.google_pubsub_topic.topic["dead_letter"]
}

moved {
  from = module.functions.google_pubsub_topic.job_watch
  to   = module.pubsub.google_pubsub_topic.topic["job_watch"]
}

moved {
  from = module.pubsub.google_cloud_scheduler_job.nightly
  to   = module.pubsub.google_cloud_scheduler_job.job["nightly"]
}

moved {
  from = module.functions.google_cloud_scheduler_job.job_watch
  to   = module.pubsub.google_cloud_scheduler_job.job["job_watch"]
}

# The job-end Eventarc triggers: one resource, for_each in modules/functions.
moved {
  from = module.functions.google_eventarc_trigger.dataflow_status
  to   = module.functions.google_eventarc_trigger.job_end["dataflow_status"]
}

moved {
  from = module.functions.google_eventarc_trigger.dataproc_audit
  to   = module.functions.google_eventarc_trigger.job_end["dataproc_audit"]
}

moved {
  from = module.functions.google_eventarc_trigger.job_watch
  to   = module.functions.google_eventarc_trigger.job_end["job_watch"]
}
