"""The routing table and the pure decisions made on it: which deployment, whether to mirror, which instance.

No I/O and no Django: the table is built from the studio's routing rows by `table_from_rows` and the random
generator is injected, so every rule here is tested with a seeded `random.Random` (STYLE.md 7).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.wire import EndpointRow

DEFAULT_TIMEOUT_MS = 5000  # Azure's request_settings.request_timeout_ms default
DEFAULT_MAX_CONCURRENT = 1  # Azure's request_settings.max_concurrent_requests_per_instance default
DEFAULT_SCORING_PATH = "/score"  # the runtime's (azmlinfsrv's) scoring route
NO_WEIGHT_MESSAGE = (
    "No valid deployments to route to. Please check that the endpoint has at least one deployment "
    "with positive weight values or use a deployment specific header to route."
)


@dataclass(frozen=True)
class DeploymentRoute:
    """One deployment as the gateway sees it: its limits and the addresses of its ready instances."""

    name: str
    instances: tuple[str, ...]  # base URLs of the ready instances, e.g. http://127.0.0.1:5012
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    # {base URL: the instance's secret header value}; kept out of repr like the keys.
    secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    scoring_path: str = DEFAULT_SCORING_PATH  # where the instance scores: a custom container's scoring_route

    @property
    def in_flight_limit(self) -> int:
        """Azure's 429 threshold: 2 × max_concurrent_requests_per_instance × ready instances."""
        return 2 * self.max_concurrent * len(self.instances)


@dataclass(frozen=True)
class EndpointTable:
    """One endpoint's routing table: credentials, live weights, mirror and deployments."""

    name: str
    auth_mode: str  # "key" or "aml_token"
    # Secrets: kept out of repr so that no log line or traceback can print them.
    keys: tuple[bytes, ...] = field(default=(), repr=False)
    token_secret: str = field(default="", repr=False)
    weights: tuple[tuple[str, int], ...] = ()  # (deployment, percent) with percent > 0, in name order
    mirror: tuple[str, int] | None = None  # (deployment, percent) with percent > 0
    deployments: Mapping[str, DeploymentRoute] = field(default_factory=dict)
    local: bool = False  # a local endpoint (`--local`): no authentication, its one deployment takes everything


RoutingTable = Mapping[str, EndpointTable]


def table_from_rows(rows: Sequence[EndpointRow]) -> dict[str, EndpointTable]:
    """The routing table from the rows `apps.endpoints.selectors.routing_rows` reads (Azure's defaults filled in)."""
    table: dict[str, EndpointTable] = {}
    for row in rows:
        deployments: dict[str, DeploymentRoute] = {}
        for deployment in row["deployments"]:
            settings = deployment["request_settings"]
            deployments[deployment["name"]] = DeploymentRoute(
                name=deployment["name"],
                instances=tuple(deployment["instances"]),
                timeout_ms=int(settings.get("request_timeout_ms") or DEFAULT_TIMEOUT_MS),
                max_concurrent=int(settings.get("max_concurrent_requests_per_instance") or DEFAULT_MAX_CONCURRENT),
                secrets={url: secret.encode() for url, secret in deployment.get("instance_secrets", {}).items()},
                scoring_path=deployment.get("scoring_path") or DEFAULT_SCORING_PATH,
            )
        weights = tuple(
            (name, int(percent))
            for name, percent in sorted(row["traffic"].items())
            if int(percent) > 0 and name in deployments
        )
        mirror = next(((name, int(p)) for name, p in row["mirror_traffic"].items() if int(p) > 0), None)
        if row["local"]:  # no traffic rules: its one deployment takes every request
            weights, mirror = tuple((name, 100) for name in sorted(deployments)[:1]), None
        table[row["name"]] = EndpointTable(
            name=row["name"],
            auth_mode=row["auth_mode"],
            keys=tuple(key.encode() for key in row["keys"]),
            token_secret=row["token_secret"],
            weights=weights,
            mirror=mirror,
            deployments=deployments,
            local=row["local"],
        )
    return table


def choose(table: EndpointTable, rng: random.Random) -> str | None:
    """The live deployment for one request, drawn by weight; None when no deployment has weight."""
    total = sum(weight for _, weight in table.weights)
    if total <= 0:
        return None
    point = rng.random() * total
    for name, weight in table.weights:
        if point < weight:
            return name
        point -= weight
    return table.weights[-1][0]  # float rounding at the very top of the range


def should_mirror(table: EndpointTable, rng: random.Random) -> str | None:
    """The shadow deployment that gets a copy of this (unpinned) request, or None."""
    if table.mirror is None:
        return None
    name, percent = table.mirror
    if name not in table.deployments:
        return None
    return name if rng.random() * 100 < percent else None


def least_in_flight(
    instances: Sequence[str], in_flight: Mapping[str, int], start: int, exclude: Collection[str] = ()
) -> str | None:
    """The instance with the fewest requests in flight; ties go round-robin from `start`."""
    count = len(instances)
    best: str | None = None
    best_load = 0
    for offset in range(count):
        address = instances[(start + offset) % count]
        if address in exclude:
            continue
        load = in_flight.get(address, 0)
        if best is None or load < best_load:
            best, best_load = address, load
    return best
