"""The Azure Resource Manager shape of the studio, for Azure's own Python SDK (azure-ai-ml) unchanged.

`api/` answers the ARM routes MLClient calls (workspace, online endpoints and deployments, code, model and
environment versions, the default datastore) and the few Blob Storage operations its uploads make; every
rule stays in apps.endpoints.services, this app only translates shapes. See docs/sdk.md.
"""
