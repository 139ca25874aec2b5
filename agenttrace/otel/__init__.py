"""The bridge: the only meeting point of OpenTelemetry types and our records."""
