"""Capture: the decorator, the span API, context propagation, serialization and the runtime."""
