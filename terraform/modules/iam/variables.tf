variable "project_id" {
  description = "Project of the service accounts and the project-level grants."
  type        = string
}

variable "project_number" {
  description = "Project number (names the Google service agents)."
  type        = string
}

variable "region" {
  description = "Location of the Artifact Registry repository."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service account ids (at most 30 characters in all)."
  type        = string
}

variable "data_bucket" {
  description = "Name of the data bucket."
  type        = string
}

variable "models_bucket" {
  description = "Name of the models bucket."
  type        = string
}

variable "staging_bucket" {
  description = "Name of the staging bucket."
  type        = string
}

variable "repository_id" {
  description = "Full id of the Artifact Registry repository."
  type        = string
}

variable "events_project" {
  description = "Project of the BigQuery events dataset."
  type        = string
}

variable "events_dataset" {
  description = "BigQuery dataset the export reads."
  type        = string
}

variable "datastore_write" {
  description = "Grant the Dataflow identity Datastore write access."
  type        = bool
}

variable "datastore_read" {
  description = "Grant the recommend identity Datastore read access."
  type        = bool
}

variable "dataflow_writable_dirs" {
  description = "Folders of the staging bucket the Dataflow jobs write (temp_location, staging_location)."
  type        = list(string)
}
