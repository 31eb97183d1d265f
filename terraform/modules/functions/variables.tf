variable "project_id" {
  description = "Project of the functions."
  type        = string
}

variable "pubsub_agent" {
  description = "Pub/Sub service agent e-mail (pulls the triggers' subscriptions, forwards dead letters)."
  type        = string
}

variable "region" {
  description = "Region of the functions and their triggers (the data bucket's location)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the function names."
  type        = string
}

variable "artifacts_dir" {
  description = "Folder with functions/<name>.zip from `make build`."
  type        = string
}

variable "staging_bucket" {
  description = "Bucket that receives the function source zips."
  type        = string
}

variable "data_bucket" {
  description = "Bucket whose object-finalized events trigger cluster and dataflow_launch."
  type        = string
}

variable "repository_id" {
  description = "Artifact Registry repository the function builds push to."
  type        = string
}

variable "nightly_topic_id" {
  description = "Topic whose messages trigger export."
  type        = string
}

variable "job_watch_topic_id" {
  description = "Full id of the job-watch topic (modules/pubsub): its ticks make cluster poll the running workflows."
  type        = string
}

variable "dead_letter_topic_id" {
  description = "Topic that receives events after the last failed delivery."
  type        = string
}

variable "service_accounts" {
  description = "Service account e-mail per identity (export, cluster, dataflow_launch, trigger, build, ...)."
  type        = map(string)
}

variable "environment" {
  description = "SIMREC_* environment of every function."
  type        = map(string)
}

variable "runtime" {
  description = "Cloud Functions runtime."
  type        = string
}

variable "memory" {
  description = "Memory per function."
  type        = map(string)
}

variable "timeout_seconds" {
  description = "Timeout of an invocation."
  type        = number
}

variable "max_instances" {
  description = "Most instances per function."
  type        = number
}

variable "max_delivery_attempts" {
  description = "Deliveries of an event before it is dead-lettered."
  type        = number
}

variable "retry_delay" {
  description = "Minimum and maximum redelivery backoff."
  type        = object({ min = string, max = string })
}
