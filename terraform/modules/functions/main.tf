# The three pipeline functions (Cloud Functions 2nd gen), each with its own identity:
#   export          <- Pub/Sub messagePublished on the nightly topic
#   cluster         <- storage object finalized on the DATA bucket (acts on export manifests)
#   dataflow_launch <- storage object finalized on the DATA bucket (acts on similarity manifests)
# Eventarc delivers with retries; after max_delivery_attempts an event goes to the
# dead-letter topic (set on the trigger's subscription by scripts/attach-dead-letter.sh).

locals {
  pubsub_published = "google.cloud.pubsub.topic.v1.messagePublished"
  object_finalized = "google.cloud.storage.object.v1.finalized"

  functions = {
    export = {
      description = "Nightly export of the events window to day partitions and the export manifest."
      event_type  = local.pubsub_published
      topic       = var.nightly_topic_id
      bucket      = null
    }
    cluster = {
      description = "Starts the Dataproc similarity workflow for exports/<tenant>/runs/<run_id>/_MANIFEST.json."
      event_type  = local.object_finalized
      topic       = null
      bucket      = var.data_bucket
    }
    dataflow_launch = {
      description = "Launches the Dataflow load for similarities/<tenant>/<run_id>/_MANIFEST.json."
      event_type  = local.object_finalized
      topic       = null
      bucket      = var.data_bucket
    }
  }

  # make build writes build/functions/<name>.zip (main.py, requirements.txt, simrec/).
  sources = { for name in keys(local.functions) : name => "${var.artifacts_dir}/functions/${name}.zip" }
}

# The object name carries the zip's hash, so a new build redeploys the function; without the
# zip (static checks, no `make build`) the root's terraform_data.build stops the plan.
resource "google_storage_bucket_object" "source" {
  for_each = local.sources

  bucket = var.staging_bucket
  name   = "artifacts/functions/${each.key}-${try(filemd5(each.value), "missing")}.zip"
  source = each.value
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description = each.value.description

  build_config {
    runtime           = var.runtime
    entry_point       = each.key # functions/<name>/main.py defines a function of that name
    service_account   = "projects/${var.project_id}/serviceAccounts/${var.service_accounts.build}"
    docker_repository = var.repository_id

    source {
      storage_source {
        bucket = var.staging_bucket
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = var.service_accounts[each.key]
    available_memory                 = var.memory[each.key]
    available_cpu                    = "1"
    timeout_seconds                  = var.timeout_seconds
    min_instance_count               = 0
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    environment_variables            = var.environment
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = each.value.event_type
    pubsub_topic          = each.value.topic
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = var.service_accounts.trigger

    dynamic "event_filters" {
      for_each = each.value.bucket == null ? [] : [each.value.bucket]
      content {
        attribute = "bucket"
        value     = event_filters.value
      }
    }
  }
}

# The trigger identity may invoke each function's service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  for_each = google_cloudfunctions2_function.fn

  project  = var.project_id
  location = var.region
  name     = each.value.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.service_accounts.trigger}"
}

# Eventarc creates and owns each trigger's Pub/Sub subscription, so Terraform cannot declare
# its dead-letter policy; this sets it (and the retry backoff) on the subscription Eventarc
# made, again whenever the trigger or the policy changes. Needs gcloud where terraform runs.
locals {
  # Every Eventarc trigger of the module: each function's own, and the job-end ones
  # (job_completion.tf).
  dead_letter_triggers = merge(
    { for name, fn in google_cloudfunctions2_function.fn : name => fn.event_trigger[0].trigger },
    { for name, trigger in google_eventarc_trigger.job_end : name => trigger.id },
  )
}

resource "terraform_data" "dead_letter" {
  for_each = local.dead_letter_triggers

  triggers_replace = [
    each.value,
    var.dead_letter_topic_id,
    var.max_delivery_attempts,
    var.retry_delay.min,
    var.retry_delay.max,
  ]

  provisioner "local-exec" {
    command = "${path.module}/scripts/attach-dead-letter.sh"
    environment = {
      PROJECT               = var.project_id
      REGION                = var.region
      TRIGGER               = each.value
      DEAD_LETTER_TOPIC     = var.dead_letter_topic_id
      MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
      MIN_RETRY_DELAY       = var.retry_delay.min
      MAX_RETRY_DELAY       = var.retry_delay.max
      PUBSUB_AGENT          = var.pubsub_agent
    }
  }
}
