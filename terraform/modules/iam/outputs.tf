output "emails" {
  description = "Service account e-mail per identity."
  value       = { for k, sa in google_service_account.sa : k => sa.email }
}

output "agents" {
  description = "E-mail of each Google-managed service agent the deployment grants to (by API; storage: the Cloud Storage agent)."
  value = merge(
    { for s, a in google_project_service_identity.agent : s => a.email },
    { "storage.googleapis.com" = data.google_storage_project_service_account.gcs.email_address },
  )
  # Whoever grants a role to an agent waits for the new agents to propagate first.
  depends_on = [time_sleep.agents]
}

output "propagation_wait" {
  description = "How long the deployment waits after a grant before using it."
  value       = local.propagation_wait
}
