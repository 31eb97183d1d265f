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
    "placeholder_id": "user_id or sku is a placeholder such as '(not set)'",
    "sku_too_long": f"sku is longer than {MAX_SKU_LENGTH} characters (the API limit)",
    "unknown_action": "action is not browsed, basket or purchase",
    "bad_timestamp": "ts is missing or not a date/timestamp",
    "item_without_quantity": "GA4: an item without a quantity in an event where others have one",
    "duplicate_item": "GA4: the item is listed again in the same event (counted once)",
    "duplicate_event": "GA4: a repeat of the same user, event and item within the tolerance",
}

#: Rows that are read and counted but neither used nor kept as rejects.
SKIP_REASONS: dict[str, str] = {
    "before_window": "the event's day is before the run's window",
    "after_window": "the event's day is after the run's window",
    "ignored_event": "GA4: an event name the settings do not map to an action",
}


class SourceError(ValueError):
    """The events source cannot be read as it is; the message is one line naming the
    file, row or column where known, and what to do."""
