# The Spark similarity job as a Dataproc workflow template with a managed cluster: the
# cluster function instantiates it with EXPORT_MANIFEST and OUTPUT; Dataproc creates the
# cluster, runs `dimsum_job.py --export-manifest <uri> --output <uri>`, and deletes it.

locals {
  # make build writes build/spark/dimsum_job.py and build/spark/simrec.zip (the py-files).
  job_files = {
    "dimsum_job.py" = "${var.artifacts_dir}/spark/dimsum_job.py"
    "simrec.zip"    = "${var.artifacts_dir}/spark/simrec.zip"
  }
  cluster_name_prefix = "${var.name_prefix}-dimsum"
  step_id             = "dimsum"
}

resource "google_storage_bucket_object" "job_file" {
  for_each = local.job_files

  bucket = var.staging_bucket
  # The hash in the path makes a new build a new template version, never a silent swap
  # under a running workflow.
  name   = "artifacts/spark/${try(filemd5(each.value), "missing")}/${each.key}"
  source = each.value
}

resource "google_dataproc_workflow_template" "dimsum" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-dimsum"

  placement {
    managed_cluster {
      cluster_name = local.cluster_name_prefix

      config {
        staging_bucket = var.staging_bucket

        gce_cluster_config {
          service_account        = var.service_account
          service_account_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
          subnetwork             = var.subnetwork
          internal_ip_only       = true

          shielded_instance_config {
            enable_secure_boot          = true
            enable_vtpm                 = true
            enable_integrity_monitoring = true
          }
        }

        master_config {
          num_instances = 1
          machine_type  = var.master_machine_type
          disk_config {
            boot_disk_type    = "pd-balanced"
            boot_disk_size_gb = var.boot_disk_gb
          }
        }

        worker_config {
          num_instances = var.workers
          machine_type  = var.worker_machine_type
          disk_config {
            boot_disk_type    = "pd-balanced"
            boot_disk_size_gb = var.boot_disk_gb
          }
        }

        dynamic "secondary_worker_config" {
          for_each = var.secondary_workers > 0 ? [1] : []
          content {
            num_instances  = var.secondary_workers
            machine_type   = var.worker_machine_type
            preemptibility = var.secondary_preemptibility
            disk_config {
              boot_disk_type    = "pd-balanced"
              boot_disk_size_gb = var.boot_disk_gb
            }
          }
        }

        software_config {
          image_version = var.image_version
          properties = {
            "dataproc:dataproc.logging.stackdriver.job.driver.enable" = "true"
          }
        }

        # Safety net: a hung workflow never keeps paying for the cluster.
        lifecycle_config {
          auto_delete_ttl = var.max_cluster_age
        }
      }
    }
  }

  jobs {
    step_id = local.step_id

    pyspark_job {
      main_python_file_uri = "gs://${var.staging_bucket}/${google_storage_bucket_object.job_file["dimsum_job.py"].name}"
      python_file_uris     = ["gs://${var.staging_bucket}/${google_storage_bucket_object.job_file["simrec.zip"].name}"]
      # args[1] and args[3] are replaced by the EXPORT_MANIFEST and OUTPUT parameters.
      args = [
        "--export-manifest", "gs://${var.data_bucket}/exports/unset/runs/unset/_MANIFEST.json",
        "--output", "gs://${var.data_bucket}/similarities/unset/unset",
      ]
      properties = merge({
        "spark.sql.adaptive.enabled"      = "true"
        "spark.dynamicAllocation.enabled" = "true"
      }, var.spark_properties)
    }
  }

  parameters {
    name        = "EXPORT_MANIFEST"
    description = "gs:// URI of the run's export manifest."
    fields      = ["jobs['${local.step_id}'].pysparkJob.args[1]"]
    validation {
      regex {
        regexes = ["gs://${var.data_bucket}/exports/.+/_MANIFEST\\.json"]
      }
    }
  }

  parameters {
    name        = "OUTPUT"
    description = "gs:// URI of the run's similarities folder."
    fields      = ["jobs['${local.step_id}'].pysparkJob.args[3]"]
    validation {
      regex {
        regexes = ["gs://${var.data_bucket}/similarities/.+"]
      }
    }
  }
}
