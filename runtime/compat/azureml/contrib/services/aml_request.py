"""`from azureml.contrib.services.aml_request import AMLRequest, rawhttp`, as in Azure ML scoring scripts."""

from __future__ import annotations

from runtime.request import AMLRequest, rawhttp

__all__ = ["AMLRequest", "rawhttp"]
