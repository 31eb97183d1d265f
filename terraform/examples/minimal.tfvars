# The least a deployment needs: copy to terraform/terraform.tfvars and edit.
# Everything else has a default (see terraform/README.md).

project_id    = "my-shop-recs"
region        = "europe-west1"
events_source = "my-shop-analytics.events.shop_events"

# Who may call the recommend endpoint (it is private unless public_endpoint = true).
recommend_invokers = ["serviceAccount:shop-frontend@my-shop-web.iam.gserviceaccount.com"]

alert_emails = ["oncall@example.com"]
