"""mkl layer (see docs/architecture.md)."""
