"""What a command does, told as it happens: events, and the listeners that turn them into
lines, JSON logs and OpenTelemetry traces and metrics (docs/observability.md)."""
