variable "project_id" {
  description = "Project of the alerts and the uptime check."
  type        = string
}

variable "project_number" {
  description = "Project number (names the monitoring service agent)."
  type        = string
}

variable "region" {
  description = "Region of the recommend service."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the metric name and of the Dataflow job names."
  type        = string
}

variable "function_services" {
  description = "Cloud Run service behind each pipeline function."
  type        = map(string)
}

variable "dataproc_cluster_prefix" {
  description = "Name prefix of the workflow's managed clusters."
  type        = string
}

variable "dead_letter_subscription" {
  description = "Subscription that keeps dead-lettered events."
  type        = string
}

variable "endpoint_url" {
  description = "HTTPS URL of the recommend service."
  type        = string
}

variable "service_name" {
  description = "Cloud Run service name of the recommend service."
  type        = string
}

variable "public_endpoint" {
  description = "Whether the endpoint is public (no token needed by the uptime check)."
  type        = bool
}

variable "alert_emails" {
  description = "E-mail addresses notified by the alerts."
  type        = list(string)
}

variable "uptime_check_period" {
  description = "Period of the uptime check."
  type        = string
}

variable "request_log_keep_ratio" {
  description = "Share of successful request logs of the recommend service kept."
  type        = number
}
