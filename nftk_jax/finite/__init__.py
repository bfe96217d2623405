"""finite layer (see docs/architecture.md)."""
