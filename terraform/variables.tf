# Inputs of the simrec deployment. Variables named like a field of simrec.config.Settings
# (window_days, max_n, ...) set that field's SIMREC_* variable on every function and on the
# recommend service; their defaults are the Settings defaults (tests/cloud/test_terraform.py checks).
# The model's parameters are one variable, `model`, declared in model.tf.

# --- project and naming --------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that hosts the deployment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the functions, Cloud Run, Dataproc, Dataflow and the regional buckets."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (buckets add the project id to stay globally unique)."
  type        = string
  default     = "simrec"

  validation {
    # 14 at most: "<prefix>-dataflow-launch" must fit a 30-character service account id.
    condition     = can(regex("^[a-z][a-z0-9-]{1,13}$", var.name_prefix))
    error_message = "name_prefix must be 2-14 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels put on every resource (app=simrec and tenant=<tenant> are always set)."
  type        = map(string)
  default     = {}
}

variable "tenant" {
  description = "Shop whose data and model this deployment builds (SIMREC_TENANT and the nightly payload)."
  type        = string
  default     = "default"

  validation {
    # Stricter than Settings (no '/'): the tenant is also a label value and a path segment.
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.tenant))
    error_message = "tenant must be 1-63 lowercase letters, digits, '_' or '-' (it is a path segment and a label)."
  }
}

variable "deletion_protection" {
  description = "Protect the Cloud Run service and the Datastore database from deletion (make destroy needs false)."
  type        = bool
  default     = false
}

# --- build artifacts -----------------------------------------------------------------------

variable "artifacts_dir" {
  description = "Folder with the outputs of `make build` (functions/*.zip, spark/, flex/); empty means ../build."
  type        = string
  default     = ""
}

variable "image_tag" {
  description = "Tag of the recommend and Flex Template images pushed by `make images` (make deploy passes the git revision)."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid container image tag."
  }
}

variable "recommend_image" {
  description = "Full image URI of the recommend service; empty means <repository>/recommend:<image_tag>."
  type        = string
  default     = ""
}

variable "flex_image" {
  description = "Full image URI of the Dataflow Flex Template; empty means <repository>/flex-load:<image_tag>."
  type        = string
  default     = ""
}

# --- storage -------------------------------------------------------------------------------

variable "force_destroy" {
  description = "Let terraform destroy delete non-empty buckets (data, models and staging objects are lost)."
  type        = bool
  default     = false
}

variable "export_retention_days" {
  description = "Days an object under exports/ is kept; day partitions are reused by later runs, so it must exceed window_days."
  type        = number
  default     = 45

  validation {
    condition     = var.export_retention_days >= 2 && var.export_retention_days > var.window_days
    error_message = "export_retention_days must be at least 2 and greater than window_days."
  }
}

variable "similarities_retention_days" {
  description = "Days an object under similarities/ is kept (it is loaded into the model the same night)."
  type        = number
  default     = 14

  validation {
    condition     = var.similarities_retention_days >= 1
    error_message = "similarities_retention_days must be at least 1."
  }
}

variable "staging_retention_days" {
  description = "Days Dataproc/Dataflow temp and staging files are kept in the staging bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.staging_retention_days >= 1
    error_message = "staging_retention_days must be at least 1."
  }
}

variable "model_noncurrent_versions" {
  description = "Overwritten versions of each models-bucket object kept by object versioning (LATEST is overwritten nightly)."
  type        = number
  default     = 5

  validation {
    condition     = var.model_noncurrent_versions >= 1
    error_message = "model_noncurrent_versions must be at least 1."
  }
}

# --- events source (export stage) -----------------------------------------------------------

variable "events_source" {
  description = "BigQuery events: `project.dataset.table` (plain schema) or `project.dataset` of the GA4 events_* tables."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]\\.[A-Za-z0-9_]{1,1024}(\\.[A-Za-z0-9_$*-]{1,1024})?$", var.events_source))
    error_message = "events_source must be project.dataset.table or project.dataset."
  }
}

variable "bigquery_location" {
  description = "Location of the events dataset, where the export job runs (EU, US or a region)."
  type        = string
  default     = "EU"

  validation {
    condition     = can(regex("^[A-Za-z]+(-[a-z]+[0-9]+)?$", var.bigquery_location))
    error_message = "bigquery_location must be a BigQuery location such as EU, US or europe-west1."
  }
}

variable "export_timeout_seconds" {
  description = "How long the export function waits for its BigQuery job (below function_timeout_seconds)."
  type        = number
  default     = 480

  validation {
    condition     = var.export_timeout_seconds > 0 && var.export_timeout_seconds < var.function_timeout_seconds
    error_message = "export_timeout_seconds must be positive and below function_timeout_seconds."
  }
}

variable "events_schema" {
  description = "Schema of events_source: 'plain' events table or the 'ga4' BigQuery export."
  type        = string
  default     = "plain"

  validation {
    condition     = contains(["plain", "ga4"], var.events_schema)
    error_message = "events_schema must be 'plain' or 'ga4'."
  }
}

# GA4 export rules (simrec.config.Settings; README "GA4 exports").
variable "ga4_event_actions" {
  description = "GA4 event_name=action pairs, comma-separated (actions: browsed, basket, purchase)."
  type        = string
  default     = "view_item=browsed,select_item=browsed,add_to_cart=basket,add_to_wishlist=basket,begin_checkout=basket,purchase=purchase"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]*=(browsed|basket|purchase)(,[A-Za-z][A-Za-z0-9_]*=(browsed|basket|purchase))*$", var.ga4_event_actions))
    error_message = "ga4_event_actions must be event_name=action pairs, comma-separated; actions browsed, basket or purchase."
  }
}

variable "ga4_user_key" {
  description = "GA4 shopper key: 'user_pseudo_id', or 'user_id' (the login id when set, else user_pseudo_id)."
  type        = string
  default     = "user_pseudo_id"

  validation {
    condition     = contains(["user_pseudo_id", "user_id"], var.ga4_user_key)
    error_message = "ga4_user_key must be 'user_pseudo_id' or 'user_id'."
  }
}

variable "ga4_time_zone" {
  description = "Time zone of the GA4 property (IANA name); the run's days follow it."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.ga4_time_zone))
    error_message = "ga4_time_zone must be an IANA time zone such as UTC or America/Los_Angeles."
  }
}

variable "placeholder_ids" {
  description = "Comma-separated user/sku values meaning 'unknown', rejected as placeholder_id."
  type        = string
  default     = "(not set)"

  validation {
    condition     = can(regex("^[^\n]*$", var.placeholder_ids))
    error_message = "placeholder_ids must be one line of comma-separated values."
  }
}

variable "duplicate_tolerance_seconds" {
  description = "GA4: repeats of an event (same user, event name, item) within this many seconds count once."
  type        = number
  default     = 1.0

  validation {
    condition     = var.duplicate_tolerance_seconds >= 0 && var.duplicate_tolerance_seconds <= 3600
    error_message = "duplicate_tolerance_seconds must be between 0 and 3600."
  }
}

variable "catalog_uri" {
  description = "Item catalog (Parquet: sku, category, in_stock, attributes) published with each model; empty = none. Keep it in the data bucket, which the Dataflow identity reads."
  type        = string
  default     = ""

  validation {
    condition     = var.catalog_uri == "" || startswith(var.catalog_uri, "gs://")
    error_message = "catalog_uri must be empty or a gs:// URI."
  }
}

# --- training window (the model's parameters: variable "model", model.tf) ------------------------

variable "window_days" {
  description = "Days of events per run."
  type        = number
  default     = 30

  validation {
    condition     = var.window_days >= 1 && var.window_days <= 3650 && floor(var.window_days) == var.window_days
    error_message = "window_days must be a whole number from 1 to 3650."
  }
}

# --- nightly schedule --------------------------------------------------------------------------

variable "schedule" {
  description = "Cron schedule of the nightly run (Cloud Scheduler syntax)."
  type        = string
  default     = "0 2 * * *"

  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 5
    error_message = "schedule must be a five-field cron expression."
  }
}

variable "schedule_time_zone" {
  description = "Time zone of the schedule (tz database name)."
  type        = string
  default     = "Etc/UTC"
}

# --- functions -----------------------------------------------------------------------------------

variable "functions_runtime" {
  description = "Cloud Functions runtime of export, cluster and dataflow_launch."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]{2}$", var.functions_runtime))
    error_message = "functions_runtime must be a python3XX runtime."
  }
}

variable "function_memory" {
  description = "Memory of each function (export, cluster, dataflow_launch)."
  type        = map(string)
  default = {
    export          = "1Gi"
    cluster         = "512Mi"
    dataflow_launch = "512Mi"
  }

  validation {
    condition     = alltrue([for k in ["export", "cluster", "dataflow_launch"] : can(regex("^[0-9]+(Mi|Gi)$", lookup(var.function_memory, k, "")))])
    error_message = "function_memory needs export, cluster and dataflow_launch, each like 512Mi or 1Gi."
  }
}

variable "function_timeout_seconds" {
  description = "Timeout of each function invocation (event-driven functions allow at most 540 s)."
  type        = number
  default     = 540

  validation {
    condition     = var.function_timeout_seconds >= 60 && var.function_timeout_seconds <= 540
    error_message = "function_timeout_seconds must be between 60 and 540."
  }
}

variable "function_max_instances" {
  description = "Most instances of each function (the nightly chain needs one; more absorb redeliveries)."
  type        = number
  default     = 3

  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 100
    error_message = "function_max_instances must be between 1 and 100."
  }
}

variable "event_max_delivery_attempts" {
  description = "Deliveries of one event before it goes to the dead-letter topic (Pub/Sub allows 5-100)."
  type        = number
  default     = 5

  validation {
    condition     = var.event_max_delivery_attempts >= 5 && var.event_max_delivery_attempts <= 100
    error_message = "event_max_delivery_attempts must be between 5 and 100."
  }
}

variable "event_retry_delay" {
  description = "Minimum and maximum backoff between redeliveries of a failed event (Pub/Sub retry policy)."
  type        = object({ min = string, max = string })
  default     = { min = "30s", max = "600s" }

  validation {
    condition     = can(regex("^[0-9]+s$", var.event_retry_delay.min)) && can(regex("^[0-9]+s$", var.event_retry_delay.max)) && tonumber(trimsuffix(var.event_retry_delay.max, "s")) <= 600
    error_message = "event_retry_delay.min and .max are durations in seconds like 30s; max is at most 600s."
  }
}

# --- Dataproc (similarity job) -------------------------------------------------------------------

variable "dataproc_image_version" {
  description = "Dataproc image; 3.0 ships Spark 4 and Python 3.11 like the project."
  type        = string
  default     = "3.0-debian12"
}

variable "dataproc_master_machine_type" {
  description = "Machine type of the Dataproc master."
  type        = string
  default     = "n2-standard-4"
}

variable "dataproc_worker_machine_type" {
  description = "Machine type of the Dataproc primary and secondary workers."
  type        = string
  default     = "n2-standard-4"
}

variable "dataproc_workers" {
  description = "Primary workers of the managed cluster (Dataproc needs at least 2)."
  type        = number
  default     = 2

  validation {
    condition     = var.dataproc_workers >= 2
    error_message = "dataproc_workers must be at least 2."
  }
}

variable "dataproc_secondary_workers" {
  description = "Secondary workers (preemptible capacity at Spot prices); 0 disables them."
  type        = number
  default     = 0

  validation {
    condition     = var.dataproc_secondary_workers >= 0
    error_message = "dataproc_secondary_workers must be >= 0."
  }
}

variable "dataproc_secondary_worker_preemptibility" {
  description = "Preemptibility of secondary workers. The provider's workflow template accepts PREEMPTIBLE (billed at Spot prices) or NON_PREEMPTIBLE, not SPOT."
  type        = string
  default     = "PREEMPTIBLE"

  validation {
    condition     = contains(["PREEMPTIBLE", "NON_PREEMPTIBLE"], var.dataproc_secondary_worker_preemptibility)
    error_message = "dataproc_secondary_worker_preemptibility must be PREEMPTIBLE or NON_PREEMPTIBLE."
  }
}

variable "dataproc_boot_disk_gb" {
  description = "Boot disk size of each Dataproc node."
  type        = number
  default     = 100

  validation {
    condition     = var.dataproc_boot_disk_gb >= 30
    error_message = "dataproc_boot_disk_gb must be at least 30."
  }
}

variable "dataproc_subnetwork" {
  description = "Subnetwork of the Dataproc nodes; it needs Private Google Access (nodes have internal IPs only)."
  type        = string
  default     = "default"
}

variable "dataproc_max_cluster_age" {
  description = "Safety net: the managed cluster is deleted after this long even if the workflow hangs."
  type        = string
  default     = "21600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dataproc_max_cluster_age))
    error_message = "dataproc_max_cluster_age is a duration in seconds like 21600s."
  }
}

variable "spark_properties" {
  description = "Extra Spark properties of the similarity job."
  type        = map(string)
  default     = {}
}

# --- Dataflow (model load) -------------------------------------------------------------------------

variable "dataflow_max_workers" {
  description = "Most Dataflow workers of the nightly load."
  type        = number
  default     = 2

  validation {
    condition     = var.dataflow_max_workers >= 1 && var.dataflow_max_workers <= 100
    error_message = "dataflow_max_workers must be between 1 and 100."
  }
}

variable "dataflow_machine_type" {
  description = "Machine type of the Dataflow workers."
  type        = string
  default     = "n1-standard-2"
}

variable "dataflow_network" {
  description = "VPC network of the Dataflow workers; empty = the project's default network."
  type        = string
  default     = ""

  validation {
    condition     = var.dataflow_network == "" || can(regex("^([a-z]([-a-z0-9]*[a-z0-9])?|.*projects/[^/]+/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?)$", var.dataflow_network))
    error_message = "dataflow_network must be empty, a network name or a networks/ URL."
  }
}

variable "dataflow_subnetwork" {
  description = "Subnetwork of the Dataflow workers (regions/REGION/subnetworks/NAME or its URL); empty = none."
  type        = string
  default     = ""

  validation {
    condition     = var.dataflow_subnetwork == "" || can(regex("(^|/)regions/[a-z0-9-]+/subnetworks/[a-z]([-a-z0-9]*[a-z0-9])?$", var.dataflow_subnetwork))
    error_message = "dataflow_subnetwork must be empty or regions/REGION/subnetworks/NAME (or its URL)."
  }
}

variable "job_max_attempts" {
  description = "Attempts of a Dataproc/Dataflow job that ends failed or cancelled (the first included) before the run is given up and alerted."
  type        = number
  default     = 3

  validation {
    condition     = var.job_max_attempts >= 1 && var.job_max_attempts <= 10
    error_message = "job_max_attempts must be between 1 and 10."
  }
}

# --- Datastore -----------------------------------------------------------------------------------------

variable "enable_datastore" {
  description = "Write neighbor lists to Datastore (sets SIMREC_DATASTORE_PROJECT; false skips the write)."
  type        = bool
  default     = true
}

variable "create_datastore_database" {
  description = "Create the (default) Firestore database in Datastore mode (false if the project already has one)."
  type        = bool
  default     = true
}

variable "datastore_location" {
  description = "Location of the Datastore database; empty means the region."
  type        = string
  default     = ""
}

variable "datastore_namespace" {
  description = "Datastore namespace ('' = default)."
  type        = string
  default     = ""
}

# --- serving -------------------------------------------------------------------------------------------

variable "serving_backend" {
  description = "Score from the in-memory snapshot ('memory') or from Datastore ('datastore')."
  type        = string
  default     = "memory"

  validation {
    condition     = contains(["memory", "datastore"], var.serving_backend)
    error_message = "serving_backend must be 'memory' or 'datastore'."
  }

  validation {
    condition     = var.serving_backend != "datastore" || var.enable_datastore
    error_message = "serving_backend 'datastore' needs enable_datastore = true."
  }
}

variable "model_refresh_seconds" {
  description = "How often the endpoint checks models/LATEST (0 = never)."
  type        = number
  default     = 60

  validation {
    condition     = var.model_refresh_seconds >= 0
    error_message = "model_refresh_seconds must be >= 0."
  }
}

variable "max_skus_per_request" {
  description = "Most skus in one request."
  type        = number
  default     = 200

  validation {
    condition     = var.max_skus_per_request >= 1 && floor(var.max_skus_per_request) == var.max_skus_per_request
    error_message = "max_skus_per_request must be a whole number >= 1."
  }
}

variable "max_n" {
  description = "Largest n a request may ask for."
  type        = number
  default     = 100

  validation {
    condition     = var.max_n >= 1 && floor(var.max_n) == var.max_n
    error_message = "max_n must be a whole number >= 1."
  }
}

variable "serving_tenants" {
  description = "Other tenants the endpoint serves besides `tenant`, comma-separated, chosen per request by tenant=; '*' = any tenant with a model."
  type        = string
  default     = ""

  validation {
    condition     = var.serving_tenants == "*" || can(regex("^([a-z0-9][a-z0-9_-]{0,62}(,[a-z0-9][a-z0-9_-]{0,62})*)?$", var.serving_tenants))
    error_message = "serving_tenants must be '', '*' or comma-separated tenant names."
  }
}

variable "datastore_cache_items" {
  description = "Neighbor lists the Datastore serving backend keeps in its LRU."
  type        = number
  default     = 50000

  validation {
    condition     = var.datastore_cache_items >= 0 && floor(var.datastore_cache_items) == var.datastore_cache_items
    error_message = "datastore_cache_items must be a whole number >= 0."
  }
}

variable "datastore_cache_seconds" {
  description = "How long the Datastore serving backend trusts a cached list."
  type        = number
  default     = 300

  validation {
    condition     = var.datastore_cache_seconds >= 0
    error_message = "datastore_cache_seconds must be >= 0."
  }
}

variable "recommend_min_instances" {
  description = "Instances of the recommend service kept warm (1 avoids cold starts; 0 scales to zero)."
  type        = number
  default     = 1

  validation {
    condition     = var.recommend_min_instances >= 0
    error_message = "recommend_min_instances must be >= 0."
  }
}

variable "recommend_max_instances" {
  description = "Most instances of the recommend service."
  type        = number
  default     = 10

  validation {
    condition     = var.recommend_max_instances >= 1 && var.recommend_max_instances >= var.recommend_min_instances
    error_message = "recommend_max_instances must be >= 1 and >= recommend_min_instances."
  }
}

variable "recommend_cpu" {
  description = "vCPUs of each recommend instance."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.recommend_cpu)
    error_message = "recommend_cpu must be 1, 2, 4, 6 or 8."
  }
}

variable "recommend_memory" {
  description = "Memory of each recommend instance (the model snapshot lives in memory)."
  type        = string
  default     = "2Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.recommend_memory))
    error_message = "recommend_memory must look like 512Mi or 2Gi."
  }
}

variable "recommend_concurrency" {
  description = "Requests one recommend instance serves at once."
  type        = number
  default     = 80

  validation {
    condition     = var.recommend_concurrency >= 1 && var.recommend_concurrency <= 1000
    error_message = "recommend_concurrency must be between 1 and 1000."
  }
}

variable "recommend_cpu_always_allocated" {
  description = "Instance-based billing (CPU always allocated, no per-request fee): cheaper under steady traffic (docs/deploy.md); false bills per request."
  type        = bool
  default     = true
}

variable "recommend_invokers" {
  description = "IAM members allowed to call the recommend endpoint (user:, group:, serviceAccount:)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.recommend_invokers : can(regex("^(user|group|serviceAccount|domain):", m))])
    error_message = "recommend_invokers entries must start with user:, group:, serviceAccount: or domain: (use public_endpoint for allUsers)."
  }
}

variable "public_endpoint" {
  description = "Public mode: anyone may call the recommend endpoint (run.invoker to allUsers) with a per-shop API key kept in Secret Manager (docs/deploy.md). Off by default."
  type        = bool
  default     = false
}

variable "allowed_origins" {
  description = "Comma-separated origins (https://shop.example) whose pages may call the endpoint (CORS); '*' = any; empty = none."
  type        = string
  default     = ""

  validation {
    condition     = var.allowed_origins == "*" || can(regex("^(https?://[A-Za-z0-9.-]+(:[0-9]+)?(, ?https?://[A-Za-z0-9.-]+(:[0-9]+)?)*)?$", var.allowed_origins))
    error_message = "allowed_origins must be '', '*' or comma-separated origins such as https://shop.example."
  }
}

variable "rate_limit_per_minute" {
  description = "Requests a minute each API key may make (token bucket per key, per server process); 0 = no limit."
  type        = number
  default     = 0

  validation {
    condition     = var.rate_limit_per_minute >= 0
    error_message = "rate_limit_per_minute must be >= 0."
  }
}

variable "rate_limit_burst" {
  description = "Requests an API key may make at once before the rate applies."
  type        = number
  default     = 60

  validation {
    condition     = var.rate_limit_burst >= 1 && floor(var.rate_limit_burst) == var.rate_limit_burst
    error_message = "rate_limit_burst must be a whole number >= 1."
  }
}

variable "api_keys_refresh_seconds" {
  description = "How often the service re-reads the API keys secret, so a rotation needs no redeploy."
  type        = number
  default     = 60

  validation {
    condition     = var.api_keys_refresh_seconds > 0
    error_message = "api_keys_refresh_seconds must be > 0."
  }
}

# --- monitoring ----------------------------------------------------------------------------------------

variable "alert_emails" {
  description = "E-mail addresses notified when a nightly run fails or the endpoint is down."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@ ]+@[^@ ]+$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "request_log_keep_ratio" {
  description = "Share of the recommend service's successful request logs kept (the rest is excluded before ingestion, which Cloud Logging bills)."
  type        = number
  default     = 0.01

  validation {
    condition     = var.request_log_keep_ratio >= 0 && var.request_log_keep_ratio <= 1
    error_message = "request_log_keep_ratio must be between 0 and 1."
  }
}

variable "uptime_check_period" {
  description = "How often the uptime check calls GET /healthz on the endpoint."
  type        = string
  default     = "300s"

  validation {
    condition     = contains(["60s", "300s", "600s", "900s"], var.uptime_check_period)
    error_message = "uptime_check_period must be 60s, 300s, 600s or 900s."
  }
}
