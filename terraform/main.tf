# simrec on Google Cloud: the nightly pipeline (scheduler -> export -> cluster -> dataflow_launch)
# and the recommend endpoint. The modules are small and wired here; docs/deploy.md explains the
# deploy and the cost.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # APIs the deployment calls. Disabling them on destroy could break other users of the
  # project, so they stay enabled.
  services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "dataflow.googleapis.com",
    "dataproc.googleapis.com",
    "datastore.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]

  artifacts_dir = var.artifacts_dir != "" ? var.artifacts_dir : "${path.root}/../build"

  # Names the code and Terraform share (log fields, the Dataflow job prefix and folders),
  # generated from simrec/deploy_contract.py: one place decides them.
  contract      = jsondecode(file("${path.module}/contract.json"))
  dataflow_dirs = [local.contract.dataflow_temp_dir, local.contract.dataflow_staging_dir]

  # events_source is project.dataset[.table]: the export function reads that dataset.
  events_parts   = split(".", var.events_source)
  events_project = local.events_parts[0]
  events_dataset = local.events_parts[1]

  recommend_image = var.recommend_image != "" ? var.recommend_image : "${module.storage.repository_url}/recommend:${var.image_tag}"
  flex_image      = var.flex_image != "" ? var.flex_image : "${module.storage.repository_url}/flex-load:${var.image_tag}"

  # Every SIMREC_* variable the code reads (simrec.config.Settings), set on every function and
  # on the recommend service, so all of them share one configuration: these and the model's
  # (local.model_env, model.tf). tests/cloud/test_terraform.py compares the names with
  # simrec.config.settings_env_names().
  environment = merge(local.settings_env, local.model_env)
  settings_env = {
    SIMREC_BACKEND                     = "gcp"
    SIMREC_TENANT                      = var.tenant
    SIMREC_DATA_URI                    = "gs://${module.storage.buckets.data}"
    SIMREC_MODELS_URI                  = "gs://${module.storage.buckets.models}"
    SIMREC_EVENTS_SOURCE               = var.events_source
    SIMREC_EVENTS_SCHEMA               = var.events_schema
    SIMREC_GA4_EVENT_ACTIONS           = var.ga4_event_actions
    SIMREC_GA4_USER_KEY                = var.ga4_user_key
    SIMREC_GA4_TIME_ZONE               = var.ga4_time_zone
    SIMREC_PLACEHOLDER_IDS             = var.placeholder_ids
    SIMREC_DUPLICATE_TOLERANCE_SECONDS = tostring(var.duplicate_tolerance_seconds)
    SIMREC_WINDOW_DAYS                 = tostring(var.window_days)
    SIMREC_ENGINE                      = "spark"
    SIMREC_GCP_PROJECT                 = var.project_id
    SIMREC_GCP_REGION                  = var.region
    SIMREC_BIGQUERY_LOCATION           = var.bigquery_location
    SIMREC_EXPORT_TIMEOUT_SECONDS      = tostring(var.export_timeout_seconds)
    SIMREC_DATASTORE_PROJECT           = var.enable_datastore ? var.project_id : ""
    SIMREC_DATASTORE_NAMESPACE         = var.datastore_namespace
    SIMREC_SERVING_BACKEND             = var.serving_backend
    SIMREC_MODEL_REFRESH_SECONDS       = tostring(var.model_refresh_seconds)
    SIMREC_MAX_SKUS_PER_REQUEST        = tostring(var.max_skus_per_request)
    SIMREC_MAX_N                       = tostring(var.max_n)
    SIMREC_SERVING_TENANTS             = var.serving_tenants
    SIMREC_DATASTORE_CACHE_ITEMS       = tostring(var.datastore_cache_items)
    SIMREC_DATASTORE_CACHE_SECONDS     = tostring(var.datastore_cache_seconds)
    SIMREC_CATALOG_URI                 = var.catalog_uri
    # Public mode (simrec.serving.access): keys in Secret Manager, CORS origins, rate limit.
    SIMREC_API_KEYS                 = module.serving.service.api_keys_secret
    SIMREC_API_KEYS_REFRESH_SECONDS = tostring(var.api_keys_refresh_seconds)
    SIMREC_ALLOWED_ORIGINS          = var.allowed_origins
    SIMREC_RATE_LIMIT_PER_MINUTE    = tostring(var.rate_limit_per_minute)
    SIMREC_RATE_LIMIT_BURST         = tostring(var.rate_limit_burst)
    # The /ui page shows an evaluation report uploaded there (docs/deploy.md).
    SIMREC_REPORTS_URI = "gs://${module.storage.buckets.models}/reports/${var.tenant}"
    # Where the cloud launchers find what Terraform made.
    SIMREC_STAGING_URI                = "gs://${module.storage.buckets.staging}"
    SIMREC_DATAPROC_WORKFLOW_TEMPLATE = module.dataproc.workflow_template.name
    SIMREC_FLEX_TEMPLATE_URI          = module.dataflow.flex_template_uri
    SIMREC_DATAFLOW_SERVICE_ACCOUNT   = module.iam.emails.dataflow
    # Not Settings fields yet (tests/cloud/test_terraform.py lists them as pending): the launch
    # environment of the Dataflow job, which bounds its cost.
    SIMREC_DATAFLOW_MAX_WORKERS  = tostring(var.dataflow_max_workers)
    SIMREC_DATAFLOW_MACHINE_TYPE = var.dataflow_machine_type
    SIMREC_DATAFLOW_NETWORK      = var.dataflow_network
    SIMREC_DATAFLOW_SUBNETWORK   = var.dataflow_subnetwork
    # Attempts of a failed Dataproc/Dataflow job before the function that launched it gives
    # the run up and alerts (simrec.stages.jobs; issue 11).
    SIMREC_JOB_MAX_ATTEMPTS = tostring(var.job_max_attempts)
  }
}

# `make build` writes every file the modules upload (functions/*.zip, spark/, flex/): one
# check of them all, so a plan without a build stops here with the list of what is missing.
locals {
  build_files         = concat(module.functions.build_files, module.dataproc.build_files, module.dataflow.build_files)
  missing_build_files = [for f in local.build_files : f if !fileexists(f)]
}

resource "terraform_data" "build" {
  lifecycle {
    precondition {
      condition     = length(local.missing_build_files) == 0
      error_message = "${join(", ", local.missing_build_files)} missing: run `make build` first (or set artifacts_dir)."
    }
  }
}

resource "google_project_service" "enabled" {
  for_each = toset(local.services)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "storage" {
  source = "./modules/storage"

  project_id                  = var.project_id
  region                      = var.region
  name_prefix                 = var.name_prefix
  force_destroy               = var.force_destroy
  export_retention_days       = var.export_retention_days
  similarities_retention_days = var.similarities_retention_days
  staging_retention_days      = var.staging_retention_days
  model_noncurrent_versions   = var.model_noncurrent_versions
  dataflow_dirs               = local.dataflow_dirs

  depends_on = [google_project_service.enabled]
}

module "iam" {
  source = "./modules/iam"

  project_id      = var.project_id
  project_number  = data.google_project.this.number
  name_prefix     = var.name_prefix
  data_bucket     = module.storage.buckets.data
  models_bucket   = module.storage.buckets.models
  staging_bucket  = module.storage.buckets.staging
  repository_id   = module.storage.repository_id
  region          = var.region
  events_project  = local.events_project
  events_dataset  = local.events_dataset
  datastore_write = var.enable_datastore
  datastore_read  = var.serving_backend == "datastore"

  dataflow_writable_dirs = local.dataflow_dirs

  depends_on = [google_project_service.enabled]
}

module "pubsub" {
  source = "./modules/pubsub"

  project_id         = var.project_id
  pubsub_agent       = module.iam.agents["pubsub.googleapis.com"]
  region             = var.region
  name_prefix        = var.name_prefix
  tenant             = var.tenant
  schedule           = var.schedule
  schedule_time_zone = var.schedule_time_zone

  depends_on = [google_project_service.enabled]
}

module "dataproc" {
  source = "./modules/dataproc"

  project_id               = var.project_id
  region                   = var.region
  name_prefix              = var.name_prefix
  staging_bucket           = module.storage.buckets.staging
  data_bucket              = module.storage.buckets.data
  artifacts_dir            = local.artifacts_dir
  service_account          = module.iam.emails.dataproc
  image_version            = var.dataproc_image_version
  master_machine_type      = var.dataproc_master_machine_type
  worker_machine_type      = var.dataproc_worker_machine_type
  workers                  = var.dataproc_workers
  secondary_workers        = var.dataproc_secondary_workers
  secondary_preemptibility = var.dataproc_secondary_worker_preemptibility
  boot_disk_gb             = var.dataproc_boot_disk_gb
  subnetwork               = var.dataproc_subnetwork
  max_cluster_age          = var.dataproc_max_cluster_age
  spark_properties         = var.spark_properties

  depends_on = [module.iam]
}

module "dataflow" {
  source = "./modules/dataflow"

  project_id                = var.project_id
  staging_bucket            = module.storage.buckets.staging
  artifacts_dir             = local.artifacts_dir
  flex_image                = local.flex_image
  enable_datastore          = var.enable_datastore
  create_datastore_database = var.create_datastore_database
  datastore_location        = var.datastore_location != "" ? var.datastore_location : var.region
  deletion_protection       = var.deletion_protection

  depends_on = [google_project_service.enabled]
}

module "functions" {
  source = "./modules/functions"

  project_id            = var.project_id
  pubsub_agent          = module.iam.agents["pubsub.googleapis.com"]
  region                = var.region
  name_prefix           = var.name_prefix
  artifacts_dir         = local.artifacts_dir
  staging_bucket        = module.storage.buckets.staging
  data_bucket           = module.storage.buckets.data
  repository_id         = module.storage.repository_id
  nightly_topic_id      = module.pubsub.topics.nightly.id
  job_watch_topic_id    = module.pubsub.topics.job_watch.id
  dead_letter_topic_id  = module.pubsub.topics.dead_letter.id
  service_accounts      = module.iam.emails
  environment           = local.environment
  runtime               = var.functions_runtime
  memory                = var.function_memory
  timeout_seconds       = var.function_timeout_seconds
  max_instances         = var.function_max_instances
  max_delivery_attempts = var.event_max_delivery_attempts
  retry_delay           = var.event_retry_delay

  # Eventarc needs the trigger identity's roles and the storage agent's publisher role first,
  # Cloud Build the build account's: every resource here waits for module.iam, whose last
  # step is the propagation wait after the grants (time_sleep.grants).
  depends_on = [module.iam]
}

module "serving" {
  source = "./modules/serving"

  project_id           = var.project_id
  region               = var.region
  name_prefix          = var.name_prefix
  image                = local.recommend_image
  service_account      = module.iam.emails.recommend
  environment          = local.environment
  min_instances        = var.recommend_min_instances
  max_instances        = var.recommend_max_instances
  cpu                  = var.recommend_cpu
  memory               = var.recommend_memory
  concurrency          = var.recommend_concurrency
  cpu_always_allocated = var.recommend_cpu_always_allocated
  invokers             = var.recommend_invokers
  public               = var.public_endpoint
  deletion_protection  = var.deletion_protection

  depends_on = [module.iam]
}

module "monitoring" {
  source = "./modules/monitoring"

  project_id               = var.project_id
  monitoring_agent         = module.iam.agents["monitoring.googleapis.com"]
  propagation_wait         = module.iam.propagation_wait
  log_contract             = local.contract
  region                   = var.region
  name_prefix              = var.name_prefix
  function_services        = module.functions.service_names
  dataproc_cluster_prefix  = module.dataproc.cluster_name_prefix
  dead_letter_subscription = module.pubsub.dead_letter_subscription_name
  endpoint_url             = module.serving.service.url
  service_name             = module.serving.service.name
  public_endpoint          = var.public_endpoint
  alert_emails             = var.alert_emails
  uptime_check_period      = var.uptime_check_period
  request_log_keep_ratio   = var.request_log_keep_ratio

  depends_on = [google_project_service.enabled]
}
