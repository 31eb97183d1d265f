output "service_names" {
  description = "Cloud Run service behind each function (where their logs and metrics live)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.service_config[0].service }
}

output "function_ids" {
  description = "Full id of each function."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.id }
}

output "triggers" {
  description = "Eventarc trigger of each function."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.event_trigger[0].trigger }
}
