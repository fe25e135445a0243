"""Shared infrastructure below every other package (docs/architecture.md)."""
