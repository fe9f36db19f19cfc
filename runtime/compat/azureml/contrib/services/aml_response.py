"""`from azureml.contrib.services.aml_response import AMLResponse`, as in Azure ML scoring scripts."""

from __future__ import annotations

from runtime.response import AMLResponse

__all__ = ["AMLResponse"]
