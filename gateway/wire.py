"""What the gateway and the studio exchange, in one module with no dependency beyond the standard library.

Both sides import it: the gateway (which writes metrics and mirror pairs, reads routing rows, verifies
tokens) and the studio (`apps/monitoring` ingests the records and sums the histograms, `apps/endpoints`
selects the routing rows and issues the tokens). A change here is a change of the wire format: gateways and
studio of one release must agree on it.

- **Metrics**: gateways aggregate in memory and push one `MetricsRecord` per (second, endpoint, deployment,
  mirrored) as JSON onto the Redis list `METRICS_QUEUE`, in batches; a Celery task drains it into rollups.
- **Mirror pairs**: sampled pairs of answers to the same request (the live deployment's and the mirrored
  one's), one JSON `MirrorPairRecord` per pair on `MIRROR_PAIRS_QUEUE`, for `compare`'s agreement rate.
- **Latency histograms**: buckets growing by 5 % from 0.01 ms (`BOUNDS_MS`), so a percentile read from a
  histogram is exact to the bucket (within 5 %) and merging histograms is exact.
- **Routing rows**: what `apps.endpoints.selectors.routing_rows` reads from the database for the gateway.
- **Tokens** of `aml_token` endpoints: `<base64url payload>.<base64url HMAC-SHA256>`; the payload names the
  endpoint and the expiry; the key is the endpoint's own `token_secret`, so regenerating it revokes them all.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import math
import os
import re
import time
from collections.abc import Mapping
from typing import NotRequired, TypedDict

# --- Redis key names ---
# Every key the studio writes in Redis lives under one prefix (STUDIO_REDIS_PREFIX, default `studio:`), so two
# studios or two test runs sharing one Redis never read or drain each other's keys. Read from the environment,
# not Django's settings: the gateway has no Django settings; apps/core/keys.py re-exports this for the studio.

_PREFIX_CHARS = re.compile(r"[A-Za-z0-9:_.-]+")


def _prefix_from_environment() -> str:
    raw = os.environ.get("STUDIO_REDIS_PREFIX", "studio:")
    # No glob characters: whoever cleans up matches `<prefix>*`.
    if not _PREFIX_CHARS.fullmatch(raw):
        raise ValueError(f"STUDIO_REDIS_PREFIX must be letters, digits and ':_.-' only, got {raw!r}")
    return raw


REDIS_PREFIX = _prefix_from_environment()


def redis_key(name: str) -> str:
    """The full Redis key for `name`, under the studio's prefix."""
    return REDIS_PREFIX + name


# --- metrics ---

METRICS_QUEUE = redis_key("metrics")


class MetricsRecord(TypedDict):
    ts: int  # the second (Unix time, UTC) the requests finished in
    endpoint: str
    deployment: str
    mirrored: bool  # a shadow copy sent by mirroring, not a live answer
    count: int
    status: dict[str, int]  # {"2xx": n, "4xx": n, "5xx": n, ...} by the status the client saw
    codes: dict[str, int]  # {"200": n, "424": n, ...}
    model_codes: dict[str, int]  # status codes returned by the model container
    latency: dict[str, int]  # sparse histogram {bucket index: count} of total gateway latency (ms)
    upstream_latency: dict[str, int]  # the same for the time spent waiting on the instance
    bytes_in: int
    bytes_out: int


# --- mirror pairs ---

MIRROR_PAIRS_QUEUE = redis_key("mirror-pairs")
MIRROR_BODY_LIMIT = 16 * 1024  # bytes of each body worth keeping; longer bodies are cut and marked truncated


class MirrorPairRecord(TypedDict):
    ts: float  # Unix time (UTC) the mirrored answer arrived
    endpoint: str
    deployment: str  # the deployment that got the mirrored copy
    live_deployment: str  # the deployment whose answer the client got
    request_id: str  # the x-request-id both copies carried
    live_status: int
    shadow_status: int
    live_body: str  # the response body as text (UTF-8, errors replaced), at most MIRROR_BODY_LIMIT bytes
    shadow_body: str
    truncated: bool  # either body was cut at MIRROR_BODY_LIMIT


# --- latency histograms ---

GROWTH = 1.05
FIRST_BOUND_MS = 0.01
LAST_BOUND_MS = 600_000.0
# Upper bounds (inclusive) of each bucket; the last bucket also holds anything slower.
BOUNDS_MS: tuple[float, ...] = tuple(
    FIRST_BOUND_MS * GROWTH**i for i in range(int(math.log(LAST_BOUND_MS / FIRST_BOUND_MS, GROWTH)) + 2)
)


def bucket_index(latency_ms: float) -> int:
    """The bucket a latency falls in."""
    return min(bisect.bisect_left(BOUNDS_MS, latency_ms), len(BOUNDS_MS) - 1)


def bucket_upper_ms(index: int) -> float:
    """The upper bound of a bucket, in milliseconds."""
    return BOUNDS_MS[index]


def merge(into: dict[int, int], other: Mapping[int, int] | Mapping[str, int]) -> dict[int, int]:
    """Add one sparse histogram {bucket: count} into another (JSON keys arrive as strings)."""
    for key, count in other.items():
        index = int(key)
        into[index] = into.get(index, 0) + count
    return into


def percentile(histogram: Mapping[int, int] | Mapping[str, int], q: float) -> float | None:
    """The q-th percentile (0-100) as the upper bound of the bucket that holds it; None when empty."""
    items = sorted((int(k), v) for k, v in histogram.items() if v)
    total = sum(count for _, count in items)
    if total == 0:
        return None
    # The nearest-rank definition: the smallest value with at least q % of samples at or below it.
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for index, count in items:
        seen += count
        if seen >= rank:
            return bucket_upper_ms(index)
    return bucket_upper_ms(items[-1][0])


# --- routing rows and their change feed (apps/core/notify.py publishes, gateway/config.py listens) ---

ROUTING_VERSION_KEY = redis_key("routing:version")  # the sequence number of the last change
ROUTING_VERSIONS_KEY = redis_key("routing:versions")  # hash: endpoint name -> sequence number of its last change
ROUTING_CHANNEL = redis_key("routing:changes")  # pub/sub messages "<seq> <endpoint> <endpoint> ..."
ROUTING_ALL = "*"  # in a message: reload every endpoint


def parse_routing_message(data: bytes | str) -> tuple[int, frozenset[str]] | None:
    """(sequence, endpoint names) of a change-feed message; None when it is not one."""
    text = data.decode() if isinstance(data, bytes) else data
    seq, _, rest = text.partition(" ")
    try:
        return int(seq), frozenset(rest.split())
    except ValueError:
        return None


class DeploymentRow(TypedDict):
    name: str
    instances: list[str]  # base URLs of the ready instances, in instance-name order
    request_settings: dict[str, int]  # Azure's request_settings as stored (keys may be missing)
    # {base URL: secret} the gateway sends as INSTANCE_SECRET_HEADER; an instance started with a secret answers
    # nothing else but its liveness probe, so a local process cannot score without the endpoint's key.
    instance_secrets: NotRequired[dict[str, str]]
    scoring_path: str  # the custom container's inference_config.scoring_route.path; "/score" for the runtime


class EndpointRow(TypedDict):
    name: str
    auth_mode: str  # "key" or "aml_token"
    keys: list[str]  # the primary and secondary keys that are set
    token_secret: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    deployments: list[DeploymentRow]  # deployments being deleted are left out
    local: bool  # a local endpoint (`--local`): no authentication, its one deployment takes every request


INSTANCE_SECRET_HEADER = "x-studio-instance-secret"


def instance_secret(key: str, *, deployment_uid: str, instance: str, port: int) -> str:
    """The secret of one run of one instance: derived from the studio's key, new with every port."""
    message = f"{deployment_uid}/{instance}/{port}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:40]


# --- tokens ---


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(*, endpoint: str, secret: str, lifetime_s: int, now: float | None = None) -> tuple[str, int]:
    """A token for the endpoint and its expiry (Unix seconds)."""
    expires = int((now if now is not None else time.time()) + lifetime_s)
    payload = _b64(json.dumps({"ep": endpoint, "exp": expires}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", expires


def verify_token(token: str, *, endpoint: str, secret: str, now: float | None = None) -> bool:
    """True when the token was signed with the secret, names the endpoint and has not expired."""
    try:
        payload, signature = token.split(".", 1)
        expected = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            return False
        claims = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError):
        return False
    return claims.get("ep") == endpoint and claims.get("exp", 0) > (now if now is not None else time.time())
