variable "project_id" {
  description = "Project of the Datastore database."
  type        = string
}

variable "staging_bucket" {
  description = "Bucket that holds the Flex Template spec."
  type        = string
}

variable "artifacts_dir" {
  description = "Folder with flex/metadata.json from `make build`."
  type        = string
}

variable "flex_image" {
  description = "Image URI of the Flex Template."
  type        = string
}

variable "enable_datastore" {
  description = "Whether the load writes to Datastore."
  type        = bool
}

variable "create_datastore_database" {
  description = "Create the (default) database in Datastore mode."
  type        = bool
}

variable "datastore_location" {
  description = "Location of the Datastore database."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the database from deletion (and keep it on destroy)."
  type        = bool
}
