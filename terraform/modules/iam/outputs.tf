output "emails" {
  description = "Service account e-mail per identity."
  value       = { for k, sa in google_service_account.sa : k => sa.email }
}

output "members" {
  description = "IAM member string (serviceAccount:...) per identity."
  value       = local.member
}
