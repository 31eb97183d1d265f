variable "project_id" {
  description = "Project of the buckets and the repository."
  type        = string
}

variable "region" {
  description = "Location of the buckets and the repository."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the bucket and repository names."
  type        = string
}

variable "force_destroy" {
  description = "Let terraform destroy delete non-empty buckets."
  type        = bool
}

variable "export_retention_days" {
  description = "Age in days after which exports/ objects are deleted."
  type        = number
}

variable "similarities_retention_days" {
  description = "Age in days after which similarities/ objects are deleted."
  type        = number
}

variable "staging_retention_days" {
  description = "Age in days after which job temp files in the staging bucket are deleted."
  type        = number
}

variable "model_noncurrent_versions" {
  description = "Overwritten versions kept per models-bucket object."
  type        = number
}

variable "dataflow_dirs" {
  description = "Folders of the staging bucket the Dataflow jobs use (temp_location, staging_location); they expire."
  type        = list(string)
}
