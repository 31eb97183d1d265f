# The recommend endpoint on Cloud Run. Callers need run.invoker: the members in `invokers`,
# and everyone only when `public` is set explicitly. Public mode then needs a per-shop API
# key on every request (simrec.serving.access), kept in the Secret Manager secret below.

resource "google_cloud_run_v2_service" "recommend" {
  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-recommend"
  description         = "simrec recommendations: customers who viewed/bought X also like Y."
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = var.service_account
    max_instance_request_concurrency = var.concurrency
    timeout                          = "10s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # true: CPU only while serving (request-based billing); false: always (instance-based).
        cpu_idle          = !var.cpu_always_allocated
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = var.environment
        content {
          name  = env.key
          value = env.value
        }
      }

      # Ready once the published model is loaded: /startupz answers 503 (JSON) while it
      # loads, so no request reaches an instance still loading (the load runs in the
      # background, never on the request path; HTTP probes count 200-399 as success), and
      # 200 when LATEST names no model yet, so the first deploy, before the first nightly
      # run, starts (every endpoint then answers 503). Up to 2 s x 60 = 120 s to load.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 60
        http_get {
          path = "/startupz" # 503 while a published model loads; 200 before the first one
          port = 8080
        }
      }
    }
  }

  # In public mode the service reads the API keys at start.
  depends_on = [google_secret_manager_secret_iam_member.api_keys_reader]
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = toset(var.invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.recommend.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Only with public = true: anyone on the internet may call the endpoint.
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.recommend.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Public mode only: the per-shop API keys, a JSON object {name: SHA-256 hex of the key}
# (docs/deploy.md). The service re-reads the latest version every api_keys_refresh_seconds,
# so adding a version rotates the keys without a redeploy. Terraform makes the secret, never
# a version: no key ever enters the Terraform state.
resource "google_secret_manager_secret" "api_keys" {
  count = var.public ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-api-keys"

  replication {
    auto {}
  }
}

# Only the recommend service may read the keys (secretAccessor on this one secret).
resource "google_secret_manager_secret_iam_member" "api_keys_reader" {
  count = var.public ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.api_keys[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${var.service_account}"
}
