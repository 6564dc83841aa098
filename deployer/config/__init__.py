"""Configuration: the `deploy.yml` models, their loading and per-environment resolution."""
