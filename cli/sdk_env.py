"""`studio sdk-env`: what a notebook needs to point Azure's Python SDK (azure-ai-ml) at this studio."""

from __future__ import annotations

from cli import tls
from cli.config import read_config_file, studio_home
from cli.errors import CliError

PYTHON = """\
from azure.ai.ml import MLClient
from azure.core.credentials import AccessToken
class StudioToken:  # the studio API token as the bearer token; the SDK never checks it itself
    def get_token(self, *scopes, **kwargs): return AccessToken(os.environ["STUDIO_TOKEN"], 2**31 - 1)
ml_client = MLClient(StudioToken(), subscription_id="local", resource_group_name="studio", workspace_name="studio")"""


def text() -> str:
    """The environment variables and the lines that build an MLClient, from what `studio up` recorded."""
    home = studio_home()
    urls = tls.read_urls(home)
    token = read_config_file().get("token")
    if not token:
        raise CliError(f"no API token in {home / 'cli.json'}: start the studio with `studio up` first")
    lines = [
        "# Azure's Python SDK (azure-ai-ml) against this studio. In the shell that starts the notebook:",
        f"export ARM_CLOUD_METADATA_URL={urls['studio_url']}/azure/metadata/endpoints",
        f"export REQUESTS_CA_BUNDLE={urls['ca_bundle']}",
        f"export STUDIO_TOKEN={token}",
        "",
        "# Then, in Python (import os first):",
        PYTHON,
    ]
    return "\n".join(lines)
