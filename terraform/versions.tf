terraform {
  # 1.9+: variable validations may refer to other variables (serving_backend needs Datastore).
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.40"
    }
    # Only for google_project_service_identity (the service agents), which is beta-only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.40"
    }
    # time_sleep: the documented waits for IAM propagation.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}
