output "service_names" {
  description = "Short name of the Cloud Run service behind each function: the service_name label of its log entries (service_config.service is the full projects/.../services/<name>)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => reverse(split("/", f.service_config[0].service))[0] }
}

output "build_files" {
  description = "Files of `make build` the module uploads (the root checks they exist)."
  value       = values(local.sources)
}
