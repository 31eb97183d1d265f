output "service_names" {
  description = "Short name of the Cloud Run service behind each function: the service_name label of its log entries (service_config.service is the full projects/.../services/<name>)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => reverse(split("/", f.service_config[0].service))[0] }
}

output "function_ids" {
  description = "Full id of each function."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.id }
}

output "triggers" {
  description = "Eventarc trigger of each function."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.event_trigger[0].trigger }
}

output "build_files" {
  description = "Files of `make build` the module uploads (the root checks they exist)."
  value       = values(local.sources)
}
