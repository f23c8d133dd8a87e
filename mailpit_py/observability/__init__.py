"""Watching the catcher run: metrics, telemetry, statistics, logs and the webhook."""
