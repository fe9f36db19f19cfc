"""The pure parts of the gateway: routing decisions with a seeded generator, auth checks, per-second records."""

from __future__ import annotations

import random
from collections import Counter

from gateway.metrics import MetricsAggregator, render_prometheus
from gateway.proxy import authorized
from gateway.routing import DeploymentRoute, EndpointTable, choose, least_in_flight, should_mirror
from gateway.wire import bucket_index, issue_token


def table(weights: dict[str, int], mirror: tuple[str, int] | None = None, **kwargs: object) -> EndpointTable:
    names = set(weights) | ({mirror[0]} if mirror else set())
    deployments = {name: DeploymentRoute(name=name, instances=("http://127.0.0.1:1",)) for name in names}
    positive = tuple((name, w) for name, w in sorted(weights.items()) if w > 0)
    return EndpointTable(name="ep1", auth_mode="key", weights=positive, mirror=mirror, deployments=deployments,
                         **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_choose_splits_by_weight_within_statistical_bounds() -> None:
    rng = random.Random(7)
    counts = Counter(choose(table({"blue": 90, "green": 10}), rng) for _ in range(10_000))
    # Binomial(10000, 0.1): standard deviation 30; five of them is far beyond chance.
    assert abs(counts["green"] - 1000) < 150
    assert counts["blue"] + counts["green"] == 10_000


def test_choose_never_picks_a_deployment_with_zero_weight() -> None:
    rng = random.Random(1)
    picks = {choose(table({"blue": 100, "green": 0}), rng) for _ in range(1000)}
    assert picks == {"blue"}


def test_choose_returns_none_when_no_deployment_has_weight() -> None:
    assert choose(table({"blue": 0, "green": 0}), random.Random(1)) is None
    assert choose(table({}), random.Random(1)) is None


def test_should_mirror_copies_the_configured_fraction() -> None:
    rng = random.Random(3)
    routed = table({"blue": 100}, mirror=("green", 20))
    mirrored = sum(should_mirror(routed, rng) == "green" for _ in range(10_000))
    assert abs(mirrored - 2000) < 200  # sd 40


def test_should_mirror_is_none_without_a_mirror() -> None:
    assert should_mirror(table({"blue": 100}), random.Random(1)) is None


def test_least_in_flight_prefers_the_idle_instance_and_rotates_ties() -> None:
    instances = ("a", "b", "c")
    assert least_in_flight(instances, {"a": 3, "b": 1, "c": 2}, start=0) == "b"
    assert [least_in_flight(instances, {}, start=i) for i in range(3)] == ["a", "b", "c"]
    assert least_in_flight(instances, {"b": 0}, start=0, exclude={"a", "b"}) == "c"
    assert least_in_flight(instances, {}, start=0, exclude={"a", "b", "c"}) is None


def test_in_flight_limit_is_twice_max_concurrent_times_ready_instances() -> None:
    route = DeploymentRoute(name="blue", instances=("a", "b", "c"), max_concurrent=4)
    assert route.in_flight_limit == 24
    assert DeploymentRoute(name="blue", instances=()).in_flight_limit == 0


def test_authorized_accepts_either_key_and_nothing_else() -> None:
    keyed = table({"blue": 100}, keys=(b"primary-key-123", b"secondary-key-456"))
    assert authorized(keyed, b"Bearer primary-key-123")
    assert authorized(keyed, b"bearer secondary-key-456")
    assert not authorized(keyed, b"Bearer primary-key-12")
    assert not authorized(keyed, b"primary-key-123")
    assert not authorized(keyed, b"Bearer ")
    assert not authorized(keyed, None)


def test_authorized_checks_tokens_for_aml_token_endpoints() -> None:
    tokened = EndpointTable(name="ep1", auth_mode="aml_token", token_secret="s3cret")
    good, _ = issue_token(endpoint="ep1", secret="s3cret", lifetime_s=60)
    expired, _ = issue_token(endpoint="ep1", secret="s3cret", lifetime_s=60, now=0)
    other, _ = issue_token(endpoint="ep2", secret="s3cret", lifetime_s=60)
    assert authorized(tokened, f"Bearer {good}".encode())
    assert not authorized(tokened, f"Bearer {expired}".encode())
    assert not authorized(tokened, f"Bearer {other}".encode())
    assert not authorized(tokened, "Bearer é".encode())


def test_table_repr_never_shows_keys_or_secrets() -> None:
    keyed = table({"blue": 100}, keys=(b"primary-key-123",), token_secret="s3cret")
    assert "primary-key-123" not in repr(keyed)
    assert "s3cret" not in repr(keyed)


def test_metrics_aggregate_per_second_deployment_and_mirrored() -> None:
    metrics = MetricsAggregator()
    common = {"endpoint": "ep1", "bytes_in": 10, "bytes_out": 20}
    metrics.record(deployment="blue", mirrored=False, status=200, model_status=200, total_ms=1.0, upstream_ms=0.5,
                   now=100.2, **common)  # fmt: skip
    metrics.record(deployment="blue", mirrored=False, status=424, model_status=500, total_ms=2.0, upstream_ms=1.5,
                   now=100.9, **common)  # fmt: skip
    metrics.record(deployment="green", mirrored=True, status=200, model_status=200, total_ms=3.0, upstream_ms=2.5,
                   now=100.5, **common)  # fmt: skip
    metrics.record(deployment="blue", mirrored=False, status=200, model_status=200, total_ms=1.0, upstream_ms=0.5,
                   now=101.1, **common)  # fmt: skip

    records = metrics.drain(before=101)
    assert [(r["ts"], r["deployment"], r["mirrored"], r["count"]) for r in records] == [
        (100, "blue", False, 2),
        (100, "green", True, 1),
    ]
    blue = records[0]
    assert blue["status"] == {"2xx": 1, "4xx": 1}
    assert blue["codes"] == {"200": 1, "424": 1}
    assert blue["model_codes"] == {"200": 1, "500": 1}
    assert blue["latency"] == {str(bucket_index(1.0)): 1, str(bucket_index(2.0)): 1}
    assert blue["upstream_latency"] == {str(bucket_index(0.5)): 1, str(bucket_index(1.5)): 1}
    assert (blue["bytes_in"], blue["bytes_out"]) == (20, 40)
    # the second still being counted stays until it is over
    assert [r["ts"] for r in metrics.drain(before=101)] == []
    assert [r["ts"] for r in metrics.drain()] == [101]


def test_prometheus_page_lists_cumulative_counters() -> None:
    metrics = MetricsAggregator()
    for status in (200, 200, 429):
        metrics.record(endpoint="ep1", deployment="blue", mirrored=False, status=status, model_status=None,
                       total_ms=3.0, upstream_ms=None, bytes_in=0, bytes_out=0)  # fmt: skip
    metrics.drop_mirror(endpoint="ep1", deployment="green")
    metrics.drain()
    text = render_prometheus(metrics, {("ep1", "blue"): 2}, reloads=5)
    assert 'studio_gateway_requests_total{endpoint="ep1",deployment="blue",code="200",mirrored="false"} 2' in text
    assert 'studio_gateway_requests_total{endpoint="ep1",deployment="blue",code="429",mirrored="false"} 1' in text
    assert (
        'studio_gateway_request_duration_seconds_bucket{endpoint="ep1",deployment="blue",mirrored="false",le="+Inf"} 3'
        in text
    )  # noqa: E501
    assert 'studio_gateway_in_flight{endpoint="ep1",deployment="blue"} 2' in text
    assert 'studio_gateway_mirror_dropped_total{endpoint="ep1",deployment="green"} 1' in text
    assert "studio_gateway_routing_reloads_total 5" in text


def test_prometheus_page_counts_seconds_not_drained_yet_once() -> None:
    metrics = MetricsAggregator()

    def record(total_ms: float, now: float) -> None:
        metrics.record(endpoint="ep1", deployment="blue", mirrored=False, status=200, model_status=200,
                       total_ms=total_ms, upstream_ms=None, bytes_in=0, bytes_out=0, now=now)  # fmt: skip

    def value(series: str) -> str:
        page = render_prometheus(metrics, {}, reloads=0).splitlines()
        return next(row for row in page if row.startswith(series + " ")).rsplit(" ", 1)[1]

    blue = 'endpoint="ep1",deployment="blue"'
    requests = f'studio_gateway_requests_total{{{blue},code="200",mirrored="false"}}'

    def bucket(le: str) -> str:
        return value(f'studio_gateway_request_duration_seconds_bucket{{{blue},mirrored="false",le="{le}"}}')

    record(1.0, now=100.1)  # le 0.001 (1 ms is inclusive)
    record(4.0, now=100.5)  # le 0.005
    assert value(requests) == "2"
    metrics.drain(before=101)
    record(30.0, now=101.2)  # le 0.05, not drained
    assert value(requests) == "3"
    assert bucket("0.001") == "1"
    assert bucket("0.005") == "2"
    assert bucket("0.025") == "2"
    assert bucket("0.05") == "3"
    assert value(f'studio_gateway_request_duration_seconds_count{{{blue},mirrored="false"}}') == "3"
    assert value(f'studio_gateway_request_duration_seconds_sum{{{blue},mirrored="false"}}') == "0.035000"
    metrics.drain()
    assert value(requests) == "3"  # drained seconds are not counted twice
