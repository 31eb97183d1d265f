# One service account per identity, each granted only what its code does, on the resources
# it touches. Bucket roles:
#   roles/storage.objectViewer - get + list objects
#   roles/storage.objectUser   - get, list, create, overwrite, delete objects (no IAM, no
#                                bucket changes): writers of manifests and partitions.

locals {
  identities = {
    export          = "export function: BigQuery export -> day partitions + export manifest"
    cluster         = "cluster function: export manifest -> Dataproc workflow"
    dataflow_launch = "dataflow_launch function: similarity manifest -> Flex Template launch"
    recommend       = "recommend service: reads the model snapshot"
    dataproc        = "Dataproc cluster VMs: the Spark similarity job"
    dataflow        = "Dataflow workers: the Beam load into Datastore and the models bucket"
    trigger         = "Eventarc triggers: deliver events to the functions"
    build           = "Cloud Build of the function sources"
  }

  repository_name = element(split("/", var.repository_id), length(split("/", var.repository_id)) - 1)
  gcs_agent       = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_service_account" "sa" {
  for_each = local.identities

  project      = var.project_id
  account_id   = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  display_name = "simrec ${each.key}"
  description  = each.value
}

locals {
  member = { for k, sa in google_service_account.sa : k => "serviceAccount:${sa.email}" }
}

# --- export -----------------------------------------------------------------------------------

# Runs the export query (EXPORT DATA / query jobs) in this project.
resource "google_project_iam_member" "export_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.member.export
}

# Downloads query results (reject rows, counts) through the BigQuery Storage Read API.
resource "google_project_iam_member" "export_read_session" {
  project = var.project_id
  role    = "roles/bigquery.readSessionUser"
  member  = local.member.export
}

# Reads the events table(s): only the one dataset named by events_source.
resource "google_bigquery_dataset_iam_member" "export_events_reader" {
  project    = var.events_project
  dataset_id = var.events_dataset
  role       = "roles/bigquery.dataViewer"
  member     = local.member.export
}

# Writes exports/<tenant>/dt=*/ (EXPORT DATA overwrites a day's files, so delete too), the
# rejects and the manifest; reads existing partitions to skip days already exported.
resource "google_storage_bucket_iam_member" "export_data_writer" {
  bucket = var.data_bucket
  role   = "roles/storage.objectUser"
  member = local.member.export
}

# --- cluster ----------------------------------------------------------------------------------

# Instantiate the workflow template and poll it; nothing else in Dataproc (no cluster or
# job administration: the workflow creates and deletes its own managed cluster).
resource "google_project_iam_custom_role" "workflow_runner" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_workflow_runner"
  title       = "simrec workflow runner"
  description = "Instantiate the simrec Dataproc workflow template and follow its operation."
  permissions = [
    "dataproc.operations.get",
    "dataproc.workflowTemplates.get",
    "dataproc.workflowTemplates.instantiate",
  ]
}

# The cluster function holds that role on the project (workflow templates live there).
resource "google_project_iam_member" "cluster_workflow_runner" {
  project = var.project_id
  role    = google_project_iam_custom_role.workflow_runner.id
  member  = local.member.cluster
}

# The managed cluster runs as the Dataproc identity: the caller must be allowed to act as it.
resource "google_service_account_iam_member" "cluster_acts_as_dataproc" {
  service_account_id = google_service_account.sa["dataproc"].name
  role               = "roles/iam.serviceAccountUser"
  member             = local.member.cluster
}

# Reads the export manifest and checks whether the run's similarity manifest exists.
resource "google_storage_bucket_iam_member" "cluster_data_reader" {
  bucket = var.data_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.cluster
}

# --- dataflow_launch ----------------------------------------------------------------------------

# Launches the Flex Template job (dataflow.jobs.create) and reads job state for idempotency.
resource "google_project_iam_member" "launch_dataflow_developer" {
  project = var.project_id
  role    = "roles/dataflow.developer"
  member  = local.member.dataflow_launch
}

# The job runs as the Dataflow identity: the caller must be allowed to act as it.
resource "google_service_account_iam_member" "launch_acts_as_dataflow" {
  service_account_id = google_service_account.sa["dataflow"].name
  role               = "roles/iam.serviceAccountUser"
  member             = local.member.dataflow_launch
}

# Reads the Flex Template spec file.
resource "google_storage_bucket_iam_member" "launch_staging_reader" {
  bucket = var.staging_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.dataflow_launch
}

# Reads the similarity manifest.
resource "google_storage_bucket_iam_member" "launch_data_reader" {
  bucket = var.data_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.dataflow_launch
}

# Checks whether the model version is already published (a redelivery starts nothing).
resource "google_storage_bucket_iam_member" "launch_models_reader" {
  bucket = var.models_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.dataflow_launch
}

# --- Dataproc VMs -------------------------------------------------------------------------------

# Required of every Dataproc VM identity (agent, logging, metrics). Note: this predefined role
# also carries project-wide storage.objects permissions; the bucket grants below state the
# intent and suffice if you replace it with a narrower custom worker role.
resource "google_project_iam_member" "dataproc_worker" {
  project = var.project_id
  role    = "roles/dataproc.worker"
  member  = local.member.dataproc
}

# Reads exports/ (partitions + manifest), writes similarities/ (parts, then the manifest).
resource "google_storage_bucket_iam_member" "dataproc_data_writer" {
  bucket = var.data_bucket
  role   = "roles/storage.objectUser"
  member = local.member.dataproc
}

# Reads the job files; writes driver output (cluster staging bucket).
resource "google_storage_bucket_iam_member" "dataproc_staging_writer" {
  bucket = var.staging_bucket
  role   = "roles/storage.objectUser"
  member = local.member.dataproc
}

# --- Dataflow workers ---------------------------------------------------------------------------

# Required of every Dataflow worker identity.
resource "google_project_iam_member" "dataflow_worker" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = local.member.dataflow
}

# Reads similarities/ (never writes the data bucket).
resource "google_storage_bucket_iam_member" "dataflow_data_reader" {
  bucket = var.data_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.dataflow
}

# Writes models/<tenant>/<version>/ and then models/<tenant>/LATEST.
resource "google_storage_bucket_iam_member" "dataflow_models_writer" {
  bucket = var.models_bucket
  role   = "roles/storage.objectUser"
  member = local.member.dataflow
}

# Temp and staging files of the job.
resource "google_storage_bucket_iam_member" "dataflow_staging_writer" {
  bucket = var.staging_bucket
  role   = "roles/storage.objectUser"
  member = local.member.dataflow
}

# Pulls the Flex Template launcher/worker image.
resource "google_artifact_registry_repository_iam_member" "dataflow_image_reader" {
  project    = var.project_id
  location   = var.region
  repository = local.repository_name
  role       = "roles/artifactregistry.reader"
  member     = local.member.dataflow
}

# Writes the neighbour entities (only when the Datastore write is on).
resource "google_project_iam_member" "dataflow_datastore_user" {
  count   = var.datastore_write ? 1 : 0
  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.member.dataflow
}

# --- recommend ------------------------------------------------------------------------------------

# Reads models/<tenant>/LATEST and the snapshot it points at.
resource "google_storage_bucket_iam_member" "recommend_models_reader" {
  bucket = var.models_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.recommend
}

# Reads neighbour entities (only with serving_backend = "datastore").
resource "google_project_iam_member" "recommend_datastore_viewer" {
  count   = var.datastore_read ? 1 : 0
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = local.member.recommend
}

# --- Eventarc ------------------------------------------------------------------------------------

# The triggers' identity receives events (run.invoker on each function is granted in the
# functions module, on that function's service only).
resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = local.member.trigger
}

# Pub/Sub mints the OIDC token of the trigger identity for the push to the function.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.sa["trigger"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

# Cloud Storage publishes the object-finalized events to Eventarc's Pub/Sub transport.
resource "google_project_iam_member" "gcs_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = local.gcs_agent
}

# --- function builds ---------------------------------------------------------------------------

# Build logs.
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.member.build
}

# Pushes the function images to the project's repository.
resource "google_artifact_registry_repository_iam_member" "build_image_writer" {
  project    = var.project_id
  location   = var.region
  repository = local.repository_name
  role       = "roles/artifactregistry.writer"
  member     = local.member.build
}

# Reads the function source zips.
resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = var.staging_bucket
  role   = "roles/storage.objectViewer"
  member = local.member.build
}
