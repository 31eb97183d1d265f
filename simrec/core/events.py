"""The event schema every source is brought to, and why a row can be rejected."""

from __future__ import annotations

#: Columns of a normalised event, in order.
EVENT_COLUMNS: tuple[str, ...] = ("user_id", "sku", "action", "ts")

#: Longest sku the API accepts (and so can ever be queried); longer ones are rejected at
#: export, so they never enter a model. Serving's request limit is this constant.
MAX_SKU_LENGTH = 256

#: Why an event row is set aside instead of used (the rejects file's ``reason``).
#: Checked in this order; a row gets the first reason that applies.
REJECT_REASONS: dict[str, str] = {
    "missing_user_id": "user_id is missing or empty",
    "empty_sku": "sku is missing or empty",
    "sku_too_long": f"sku is longer than {MAX_SKU_LENGTH} characters (the API limit)",
    "unknown_action": "action is not browsed, basket or purchase",
    "bad_timestamp": "ts is missing or not a date/timestamp",
}
