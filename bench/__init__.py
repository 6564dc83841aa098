"""The benchmark harness (not part of the package)."""
