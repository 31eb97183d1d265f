# The recommend endpoint on Cloud Run. Callers need run.invoker: the members in `invokers`,
# and everyone only when `public` is set explicitly.

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

      # Ready once a model is loaded: /healthz answers 200 then and 503 (JSON) before, so
      # no request reaches an instance still loading (the load runs in the background,
      # never on the request path; HTTP probes count 200-399 as success). Up to
      # 2 s x 60 = 120 s to load. A revision started before any model was published fails
      # this probe: publish the first model before deploying the service.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 60
        http_get {
          path = "/healthz"
          port = 8080
        }
      }
    }
  }
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
