#!/usr/bin/env bash
# Give the Pub/Sub subscription that Eventarc created for a trigger a dead-letter topic and a
# retry backoff. Called by terraform (modules/functions, terraform_data.dead_letter) with:
#   PROJECT REGION TRIGGER DEAD_LETTER_TOPIC MAX_DELIVERY_ATTEMPTS MIN_RETRY_DELAY
#   MAX_RETRY_DELAY PUBSUB_AGENT
set -euo pipefail

for var in PROJECT REGION TRIGGER DEAD_LETTER_TOPIC MAX_DELIVERY_ATTEMPTS MIN_RETRY_DELAY \
    MAX_RETRY_DELAY PUBSUB_AGENT; do
  if [[ -z "${!var:-}" ]]; then
    echo "attach-dead-letter: $var is not set" >&2
    exit 2
  fi
done
command -v gcloud >/dev/null || { echo "attach-dead-letter: gcloud is required" >&2; exit 2; }

subscription="$(gcloud eventarc triggers describe "$TRIGGER" --project "$PROJECT" \
  --location "$REGION" --format 'value(transport.pubsub.subscription)')"
if [[ -z "$subscription" ]]; then
  echo "attach-dead-letter: trigger $TRIGGER has no Pub/Sub subscription" >&2
  exit 1
fi

gcloud pubsub subscriptions update "$subscription" --project "$PROJECT" \
  --dead-letter-topic "$DEAD_LETTER_TOPIC" \
  --max-delivery-attempts "$MAX_DELIVERY_ATTEMPTS" \
  --min-retry-delay "$MIN_RETRY_DELAY" \
  --max-retry-delay "$MAX_RETRY_DELAY"

# Pub/Sub forwards to the dead-letter topic as its service agent, which must be allowed to
# acknowledge on the source subscription.
gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project "$PROJECT" \
  --member "serviceAccount:$PUBSUB_AGENT" --role roles/pubsub.subscriber >/dev/null

echo "attach-dead-letter: $subscription -> $DEAD_LETTER_TOPIC after $MAX_DELIVERY_ATTEMPTS attempts"
