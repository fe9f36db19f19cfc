"""Signed, expiring tokens for `aml_token` endpoints. The format lives in `gateway/wire.py`, which the gateway
(it verifies them) and the studio (it issues them) share.
"""

from __future__ import annotations

from gateway.wire import issue_token, verify_token

__all__ = ["issue_token", "verify_token"]
