"""linalg layer (see docs/architecture.md)."""
