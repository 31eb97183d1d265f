terraform {
  # 1.9+: variable validations may refer to other variables (serving_backend needs Datastore).
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.40"
    }
  }
}
