variable "project_id" {
  description = "Project of the alerts and the uptime check."
  type        = string
}

variable "monitoring_agent" {
  description = "Monitoring service agent e-mail (the uptime check's OIDC identity)."
  type        = string
}

variable "region" {
  description = "Region of the recommend service."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the log exclusion's name."
  type        = string
}

variable "function_services" {
  description = "Short name of the Cloud Run service behind each pipeline function (the service_name label of its log entries)."
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

variable "log_contract" {
  description = "Log field names and values and the Dataflow job prefix the code uses (terraform/contract.json)."
  type        = map(string)
}

variable "propagation_wait" {
  description = "Wait after a grant before it is used (the iam module's documented wait)."
  type        = string
}
