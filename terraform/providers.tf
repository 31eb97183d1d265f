provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource carries these labels, so the bill can be split by deployment.
  default_labels = merge({ app = "simrec", tenant = var.tenant }, var.labels)
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = merge({ app = "simrec", tenant = var.tenant }, var.labels)
}
