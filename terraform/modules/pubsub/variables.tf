variable "project_id" {
  description = "Project of the topics and the scheduler job."
  type        = string
}

variable "pubsub_agent" {
  description = "Pub/Sub service agent e-mail (forwards dead letters)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Scheduler job."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the topic and job names."
  type        = string
}

variable "tenant" {
  description = "Tenant in the nightly payload."
  type        = string
}

variable "schedule" {
  description = "Cron schedule of the nightly run."
  type        = string
}

variable "schedule_time_zone" {
  description = "Time zone of the schedule."
  type        = string
}

variable "job_watch_schedule" {
  description = "How often the Dataproc workflows still running are polled (cron, UTC)."
  type        = string
  default     = "*/10 * * * *"
}
