"""Serving: the model holder (latest snapshot, refreshed without restart) and the HTTP API."""
