"""The embedded default: the cloud's event delivery played on one machine."""
