variable "project_id" {
  description = "Project of the workflow template."
  type        = string
}

variable "region" {
  description = "Dataproc region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the template and cluster names."
  type        = string
}

variable "staging_bucket" {
  description = "Bucket of the job files and the cluster staging data."
  type        = string
}

variable "data_bucket" {
  description = "Bucket of the job's input (exports/) and output (similarities/)."
  type        = string
}

variable "artifacts_dir" {
  description = "Folder with spark/dimsum_job.py and spark/simrec.zip from `make build`."
  type        = string
}

variable "service_account" {
  description = "Identity of the cluster VMs."
  type        = string
}

variable "image_version" {
  description = "Dataproc image version."
  type        = string
}

variable "master_machine_type" {
  description = "Machine type of the master."
  type        = string
}

variable "worker_machine_type" {
  description = "Machine type of the workers."
  type        = string
}

variable "workers" {
  description = "Primary workers."
  type        = number
}

variable "secondary_workers" {
  description = "Secondary workers (0 = none)."
  type        = number
}

variable "secondary_preemptibility" {
  description = "Preemptibility of the secondary workers."
  type        = string
}

variable "boot_disk_gb" {
  description = "Boot disk size of each node."
  type        = number
}

variable "subnetwork" {
  description = "Subnetwork of the nodes (needs Private Google Access)."
  type        = string
}

variable "max_cluster_age" {
  description = "The managed cluster is deleted after this long in any case."
  type        = string
}

variable "spark_properties" {
  description = "Extra Spark properties of the job."
  type        = map(string)
}
