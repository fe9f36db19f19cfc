"""Backends run deployments: local processes (the embedded default) or Kubernetes."""
