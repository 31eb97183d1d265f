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

  # Google-managed service agents the deployment grants roles to. Enabling an API does not
  # always create its agent, and a grant to an agent that does not exist yet fails, so each
  # is created explicitly (Service Usage generateServiceIdentity). The storage agent is
  # created by its data source below.
  agent_services = ["eventarc.googleapis.com", "monitoring.googleapis.com", "pubsub.googleapis.com"]
  agent_member   = { for s, a in google_project_service_identity.agent : s => "serviceAccount:${a.email}" }

  # IAM changes take effect within minutes, not at once (IAM docs: access change
  # propagation); the provider's Cloud Functions examples wait 60s after granting the build
  # account before creating the function. Everything that uses a grant below depends on
  # time_sleep.grants (the root module makes the functions, the service and monitoring
  # depend on this module).
  propagation_wait = "120s"

  # Cloud Functions (2nd gen) copies each function's source to this Google-created bucket
  # and Cloud Build reads it from there (functions docs: build process).
  gcf_sources_bucket = "gcf-v2-sources-${var.project_number}-${var.region}"
  objects            = "projects/_/buckets"

  # Job records: <data bucket>/jobs/<job id>.json (simrec.core.layout.job_record). The
  # functions that launch jobs (cluster, dataflow_launch) record each job they start, mark
  # it when its end is handled (an overwrite: create + delete), and the watch deletes
  # records older than simrec.stages.jobs.RECORD_DAYS (simrec.stages.jobs).
  job_records_prefix = "jobs/"
  job_records_only   = "resource.name.startsWith(\"${local.objects}/${var.data_bucket}/objects/${local.job_records_prefix}\")"
}

# --- service agents ---------------------------------------------------------------------------

# beta only: google_project_service_identity is not in the GA provider.
resource "google_project_service_identity" "agent" {
  provider = google-beta
  for_each = toset(local.agent_services)

  project = var.project_id
  service = each.value
}

# A new agent is eventually consistent too: wait before granting roles to it.
resource "time_sleep" "agents" {
  create_duration = local.propagation_wait

  depends_on = [google_project_service_identity.agent, data.google_storage_project_service_account.gcs]
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

# --- cluster: its custom role -----------------------------------------------------------------

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

# The Cloud Storage service agent (local.gcs_agent): it publishes the object events.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

# --- grants -------------------------------------------------------------------------------------

locals {
  # Every grant: one role (role) for one identity (member) on one resource (on: the project, a
  # bucket, a service account or the repository), with why the code needs it, where the
  # role is wider than the code's use the IAM condition that narrows it, and where a setting
  # decides whether the grant is needed, that setting (when). The keys were the
  # names of the grants' own resources before (terraform/moved.tf).
  grants = {
    # --- export
    export_job_user = {
      on  = "project", role = "roles/bigquery.jobUser", member = local.member.export
      why = "Runs the export query (EXPORT DATA / query jobs) in this project."
    }
    export_data_writer = {
      on  = "bucket", bucket = var.data_bucket, role = "roles/storage.objectUser", member = local.member.export
      why = "Writes exports/<tenant>/dt=*/ (EXPORT DATA overwrites a day's files, so delete too), the rejects and the manifest; reads existing partitions to skip days already exported."
    }

    # --- cluster
    cluster_workflow_runner = {
      on  = "project", role = google_project_iam_custom_role.workflow_runner.id, member = local.member.cluster
      why = "Holds the workflow-runner role on the project (workflow templates live there)."
    }
    cluster_acts_as_dataproc = {
      on  = "service_account", service_account = "dataproc", role = "roles/iam.serviceAccountUser", member = local.member.cluster
      why = "The managed cluster runs as the Dataproc identity: the caller must be allowed to act as it."
    }
    cluster_data_reader = {
      on  = "bucket", bucket = var.data_bucket, role = "roles/storage.objectViewer", member = local.member.cluster
      why = "Reads the export manifest and checks whether the run's similarity manifest exists."
    }
    cluster_job_records_writer = {
      on        = "bucket", bucket = var.data_bucket, role = "roles/storage.objectUser", member = local.member.cluster
      why       = "Writes its job records (jobs/ only; its data-bucket role above stays read-only)."
      condition = local.job_records_condition
    }

    # --- dataflow_launch
    launch_dataflow_developer = {
      on  = "project", role = "roles/dataflow.developer", member = local.member.dataflow_launch
      why = "Launches the Flex Template job (dataflow.jobs.create) and reads job state for idempotency."
    }
    launch_acts_as_dataflow = {
      on  = "service_account", service_account = "dataflow", role = "roles/iam.serviceAccountUser", member = local.member.dataflow_launch
      why = "The job runs as the Dataflow identity: the caller must be allowed to act as it."
    }
    launch_staging_reader = {
      on  = "bucket", bucket = var.staging_bucket, role = "roles/storage.objectViewer", member = local.member.dataflow_launch
      why = "Reads the Flex Template spec file."
    }
    launch_data_reader = {
      on  = "bucket", bucket = var.data_bucket, role = "roles/storage.objectViewer", member = local.member.dataflow_launch
      why = "Reads the similarity manifest."
    }
    launch_models_reader = {
      on  = "bucket", bucket = var.models_bucket, role = "roles/storage.objectViewer", member = local.member.dataflow_launch
      why = "Checks whether the model version is already published (a redelivery starts nothing)."
    }
    launch_job_records_writer = {
      on        = "bucket", bucket = var.data_bucket, role = "roles/storage.objectUser", member = local.member.dataflow_launch
      why       = "Writes its job records (jobs/ only; its data-bucket role above stays read-only)."
      condition = local.job_records_condition
    }

    # --- Dataproc VMs
    dataproc_worker = {
      on  = "project", role = "roles/dataproc.worker", member = local.member.dataproc
      why = "Required of every Dataproc VM identity (agent, logging, metrics, the Dataproc-managed temp bucket). The role also carries project-wide storage.objects permissions: the condition takes away the models bucket (the Spark job never touches it, so it can never move a LATEST pointer) and the deployed code under artifacts/ (read-only through dataproc_staging_reader)."
      condition = {
        title       = "not models, not artifacts"
        description = "No object access in the models bucket or under artifacts/ of the staging bucket."
        # Scoped to Cloud Storage: the role's other permissions (Dataproc agent, Logging,
        # Monitoring) are for services that may not supply resource.name, so the condition
        # must not depend on it for them (IAM docs: other services do not recognize
        # resource attributes).
        expression = "resource.service != \"storage.googleapis.com\" || (!resource.name.startsWith(\"${local.objects}/${var.models_bucket}/\") && !resource.name.startsWith(\"${local.objects}/${var.staging_bucket}/objects/artifacts/\"))"
      }
    }
    dataproc_data_writer = {
      on  = "bucket", bucket = var.data_bucket, role = "roles/storage.objectUser", member = local.member.dataproc
      why = "Reads exports/ (partitions + manifest), writes similarities/ (parts, then the manifest)."
    }
    dataproc_staging_reader = {
      on  = "bucket", bucket = var.staging_bucket, role = "roles/storage.objectViewer", member = local.member.dataproc
      why = "Reads the job files under artifacts/spark/ (never writes them)."
    }
    dataproc_staging_writer = {
      on  = "bucket", bucket = var.staging_bucket, role = "roles/storage.objectUser", member = local.member.dataproc
      why = "Writes driver output and cluster metadata: only under the cluster staging prefix."
      condition = {
        title       = "dataproc staging output"
        description = "Objects under google-cloud-dataproc-metainfo/ only."
        expression  = "resource.name.startsWith(\"${local.objects}/${var.staging_bucket}/objects/google-cloud-dataproc-metainfo/\")"
      }
    }

    # --- Dataflow workers
    dataflow_worker = {
      on  = "project", role = "roles/dataflow.worker", member = local.member.dataflow
      why = "Required of every Dataflow worker identity."
    }
    dataflow_data_reader = {
      on  = "bucket", bucket = var.data_bucket, role = "roles/storage.objectViewer", member = local.member.dataflow
      why = "Reads similarities/ (never writes the data bucket)."
    }
    dataflow_models_writer = {
      on  = "bucket", bucket = var.models_bucket, role = "roles/storage.objectUser", member = local.member.dataflow
      why = "Writes models/<tenant>/<version>/ and then models/<tenant>/LATEST."
    }
    dataflow_staging_reader = {
      on  = "bucket", bucket = var.staging_bucket, role = "roles/storage.objectViewer", member = local.member.dataflow
      why = "Reads the Flex Template spec under artifacts/flex/ (never writes it)."
    }
    dataflow_staging_writer = {
      on  = "bucket", bucket = var.staging_bucket, role = "roles/storage.objectUser", member = local.member.dataflow
      why = "Temp and staging files of the job: only under the launcher's temp_location and staging_location (terraform/contract.json)."
      condition = {
        title       = "dataflow temp and staging"
        description = "Objects under the job's temp and staging folders only."
        expression  = join(" || ", [for d in var.dataflow_writable_dirs : "resource.name.startsWith(\"${local.objects}/${var.staging_bucket}/objects/${d}/\")"])
      }
    }
    dataflow_image_reader = {
      on  = "repository", role = "roles/artifactregistry.reader", member = local.member.dataflow
      why = "Pulls the Flex Template launcher/worker image."
    }

    # --- recommend
    recommend_models_reader = {
      on  = "bucket", bucket = var.models_bucket, role = "roles/storage.objectViewer", member = local.member.recommend
      why = "Reads models/<tenant>/LATEST and the snapshot it points at."
    }

    # --- Eventarc
    trigger_event_receiver = {
      on  = "project", role = "roles/eventarc.eventReceiver", member = local.member.trigger
      why = "The triggers' identity receives events (run.invoker on each function is granted in the functions module, on that function's service only)."
    }
    pubsub_token_creator = {
      on  = "service_account", service_account = "trigger", role = "roles/iam.serviceAccountTokenCreator", member = local.agent_member["pubsub.googleapis.com"]
      why = "Pub/Sub mints the OIDC token of the trigger identity for the push to the function."
    }
    eventarc_agent = {
      on  = "project", role = "roles/eventarc.serviceAgent", member = local.agent_member["eventarc.googleapis.com"]
      why = "The Eventarc service agent reads the buckets' notification setup and manages the triggers' transport (its documented role; granted explicitly so the first trigger does not wait for the automatic grant)."
    }
    gcs_agent_publisher = {
      on  = "project", role = "roles/pubsub.publisher", member = local.gcs_agent
      why = "Cloud Storage publishes the object-finalized events to Eventarc's Pub/Sub transport."
    }

    # --- function builds
    build_log_writer = {
      on  = "project", role = "roles/logging.logWriter", member = local.member.build
      why = "Build logs."
    }
    build_image_writer = {
      on  = "repository", role = "roles/artifactregistry.writer", member = local.member.build
      why = "Pushes the function images to the project's repository."
    }
    build_source_reader = {
      on  = "bucket", bucket = var.staging_bucket, role = "roles/storage.objectViewer", member = local.member.build
      why = "Reads the function source zips."
    }
    build_gcf_sources_reader = {
      on  = "project", role = "roles/storage.objectViewer", member = local.member.build
      why = "Reads the copy of each source that Cloud Functions puts in gcf-v2-sources-<number>-<region>, where Cloud Build fetches it. That bucket is created by the first function deploy, so the grant is on the project, conditioned on the bucket's name (valid before it exists)."
      condition = {
        title       = "gcf-v2-sources bucket"
        description = "Objects of the Cloud Functions source bucket of this region only."
        expression  = "resource.name.startsWith(\"${local.objects}/${local.gcf_sources_bucket}\")"
      }
    }

    # --- Datastore: only where a setting needs it (when)
    dataflow_datastore_user = {
      on  = "project", role = "roles/datastore.user", member = local.member.dataflow, when = var.datastore_write
      why = "Writes the neighbor entities (only when the Datastore write is on)."
    }
    recommend_datastore_viewer = {
      on  = "project", role = "roles/datastore.viewer", member = local.member.recommend, when = var.datastore_read
      why = "Reads neighbor entities (only with serving_backend = \"datastore\")."
    }
  }

  job_records_condition = {
    title       = "simrec job records"
    description = "Only the job records under ${local.job_records_prefix} of the data bucket."
    expression  = local.job_records_only
  }

  grants_on = { for on in ["project", "bucket", "service_account", "repository"] : on => { for k, g in local.grants : k => g if g.on == on && try(g.when, true) } }
}

# Reads the events table(s): only the one dataset named by events_source.
resource "google_bigquery_dataset_iam_member" "export_events_reader" {
  project    = var.events_project
  dataset_id = var.events_dataset
  role       = "roles/bigquery.dataViewer"
  member     = local.member.export
}

# One resource per kind of place a grant is on; agents' grants wait for the agents to exist.
resource "google_project_iam_member" "grant" {
  for_each = local.grants_on.project

  project = var.project_id
  role    = each.value.role
  member  = each.value.member

  dynamic "condition" {
    for_each = try([each.value.condition], [])
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }

  depends_on = [time_sleep.agents]
}

resource "google_storage_bucket_iam_member" "grant" {
  for_each = local.grants_on.bucket

  bucket = each.value.bucket
  role   = each.value.role
  member = each.value.member

  dynamic "condition" {
    for_each = try([each.value.condition], [])
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }
}

resource "google_service_account_iam_member" "grant" {
  for_each = local.grants_on.service_account

  service_account_id = google_service_account.sa[each.value.service_account].name
  role               = each.value.role
  member             = each.value.member

  depends_on = [time_sleep.agents]
}

resource "google_artifact_registry_repository_iam_member" "grant" {
  for_each = local.grants_on.repository

  project    = var.project_id
  location   = var.region
  repository = local.repository_name
  role       = each.value.role
  member     = each.value.member
}

# --- propagation --------------------------------------------------------------------------------

# Every grant above, then the documented wait; the functions, their triggers, the service
# and the uptime check come after this (tests/cloud/test_terraform.py checks the chain).
resource "time_sleep" "grants" {
  create_duration = local.propagation_wait

  depends_on = [
    google_bigquery_dataset_iam_member.export_events_reader,
    google_project_iam_member.grant,
    google_storage_bucket_iam_member.grant,
    google_service_account_iam_member.grant,
    google_artifact_registry_repository_iam_member.grant,
  ]
}
