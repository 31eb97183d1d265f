variable "project_id" {
  description = "Project of the service."
  type        = string
}

variable "region" {
  description = "Region of the service."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service name."
  type        = string
}

variable "image" {
  description = "Container image of the recommend service."
  type        = string
}

variable "service_account" {
  description = "Identity of the service."
  type        = string
}

variable "environment" {
  description = "SIMREC_* environment of the service."
  type        = map(string)
}

variable "min_instances" {
  description = "Instances kept warm."
  type        = number
}

variable "max_instances" {
  description = "Most instances."
  type        = number
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = string
}

variable "memory" {
  description = "Memory per instance."
  type        = string
}

variable "concurrency" {
  description = "Concurrent requests per instance."
  type        = number
}

variable "cpu_always_allocated" {
  description = "Instance-based billing (CPU always allocated)."
  type        = bool
}

variable "invokers" {
  description = "IAM members allowed to call the service."
  type        = list(string)
}

variable "public" {
  description = "Public mode: grant run.invoker to allUsers and keep per-shop API keys in Secret Manager."
  type        = bool
}

variable "deletion_protection" {
  description = "Protect the service from deletion."
  type        = bool
}
