"""The scoring gateway: the data plane between clients and deployment instances (see docs/gateway.md)."""
