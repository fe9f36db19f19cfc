"""Makes `azureml.contrib.services.aml_request` / `.aml_response` import in scoring scripts run by this runtime.

The modules live under runtime/compat/azureml/contrib/services/; `azureml` and `azureml.contrib` have no
__init__.py (PEP 420 namespace packages), so they coexist with real azureml packages.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent

# public import names -> (the runtime module that implements them, the name that must be ours)
ALIASES = {
    "azureml.contrib.services.aml_request": ("runtime.request", "rawhttp"),
    "azureml.contrib.services.aml_response": ("runtime.response", "AMLResponse"),
}
# what azmlinfsrv's own documentation tells scripts to import
AZMLINFSRV_ALIASES = {
    "azureml_inference_server_http.api.aml_request": "runtime.request",
    "azureml_inference_server_http.api.aml_response": "runtime.response",
}


def install() -> None:
    """Put runtime/compat on sys.path and make sure both import names resolve to this runtime's classes."""
    if str(COMPAT_DIR) not in sys.path:
        sys.path.insert(0, str(COMPAT_DIR))
    for name, (target, key) in ALIASES.items():
        ours = importlib.import_module(target)
        try:
            module = importlib.import_module(name)
        except ImportError:
            module = None
        # A real (Flask-based) azureml-contrib-services package can win the import: its @rawhttp would not tell
        # this server anything, so the name is pointed at ours, as azmlinfsrv does with its own.
        if getattr(module, key, None) is not getattr(ours, key):
            sys.modules[name] = ours
    if importlib.util.find_spec("azureml_inference_server_http") is None:
        for name, target in AZMLINFSRV_ALIASES.items():
            sys.modules.setdefault(name, importlib.import_module(target))
