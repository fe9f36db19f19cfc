"""Comparing two deployments, and the agreement of mirrored answers with the live ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from apps.core.errors import ApplicationError
from apps.monitoring import compare, histogram, services
from apps.monitoring.models import MirrorPair
from gateway.wire import MirrorPairRecord
from tests.monitoring.gateway import Request, aggregate, push, push_pairs

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def pair(n: int, live: Any, shadow: Any, *, live_status: int = 200, shadow_status: int = 200) -> MirrorPairRecord:
    return MirrorPairRecord(
        ts=T0.timestamp() + n,
        endpoint="ep1",
        deployment="green",
        live_deployment="blue",
        request_id=f"req-{n}",
        live_status=live_status,
        shadow_status=shadow_status,
        live_body=live if isinstance(live, str) else json.dumps(live),
        shadow_body=shadow if isinstance(shadow, str) else json.dumps(shadow),
        truncated=False,
    )


def test_agreement_counts_equal_within_tolerance_and_different_answers() -> None:
    pairs = [
        # 6 identical answers
        *(
            pair(i, {"predictions": [i, 0.5], "label": "cat"}, {"label": "cat", "predictions": [i, 0.5]})
            for i in range(6)
        ),
        # 2 that differ only in the 9th significant digit (within 1 ppm)
        pair(6, {"score": 0.123456789}, {"score": 0.1234567891}),
        pair(7, [1.0, 2.0, 3.000000001], [1.0, 2.0, 3.0]),
        # 2 real disagreements: a different number, a different status
        pair(8, {"score": 0.9}, {"score": 0.7}),
        pair(9, {"score": 0.9}, {"error": "boom"}, shadow_status=500),
    ]
    push_pairs(pairs)
    assert services.mirror_pairs_ingest() == 10

    result = compare.agreement(
        endpoint="ep1", deployment="green", start=T0, end=T0 + timedelta(minutes=1), rel_tol=1e-6
    )

    assert (result["compared"], result["agreed"], result["agreed_within_tolerance"], result["disagreed"]) == (
        10,
        8,
        2,
        2,
    )
    assert result["agreement_rate"] == 0.8
    assert result["live_deployments"] == ["blue"]
    assert [(e["request_id"], e["difference"]) for e in result["examples"]] == [
        ("req-8", "$.score: 0.9 != 0.7"),
        ("req-9", "status 200 != 500"),
    ]
    # With no tolerance the near-equal answers disagree too.
    strict = compare.agreement(endpoint="ep1", deployment="green", start=T0, end=T0 + timedelta(minutes=1), rel_tol=0)
    assert (strict["agreed"], strict["disagreed"]) == (6, 4)
    assert strict["examples"][0]["difference"] == "$.score: 0.123456789 != 0.1234567891"


@pytest.mark.parametrize(
    ("live", "shadow", "equal", "where"),
    [
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False, "$.a: 2 items != 3 items"),
        ({"a": 1}, {"b": 1}, False, "$: keys differ (a, b)"),
        ({"a": 1}, {"a": "1"}, False, "$.a: int != str"),
        ({"a": True}, {"a": 1}, False, "$.a: bool != int"),
        ({"a": 1}, {"a": 1.0}, True, ""),
        ("plain text", "plain text", True, ""),
        ("plain text", "other text", False, "bodies differ (not JSON)"),
    ],
)
def test_answers_compare_explains_where_they_differ(live: Any, shadow: Any, equal: bool, where: str) -> None:
    record = pair(0, live, shadow)
    row = MirrorPair(
        ts=T0,
        live_status=200,
        shadow_status=200,
        live_body=record["live_body"],
        shadow_body=record["shadow_body"],
    )
    verdict = compare.answers_compare(row, rel_tol=1e-6)
    assert (verdict.equal, verdict.where) == (equal, where)


def test_compare_puts_percentiles_errors_and_throughput_side_by_side() -> None:
    rng = np.random.default_rng(1)
    blue = [
        Request(ts=T0.timestamp() + i * 0.05, deployment="blue", latency_ms=float(v), status=200 if i % 50 else 500)
        for i, v in enumerate(rng.lognormal(3.0, 0.4, size=1200))
    ]
    green = [
        Request(ts=T0.timestamp() + i * 0.5, deployment="green", latency_ms=float(v), mirrored=True)
        for i, v in enumerate(rng.lognormal(2.0, 0.4, size=120))
    ]
    push(aggregate(blue + green))
    services.metrics_ingest()
    push_pairs([pair(i, {"y": i}, {"y": i if i % 4 else -1}) for i in range(20)])
    services.mirror_pairs_ingest()

    body = compare.deployments_compare(endpoint="ep1", a="blue", b="green", start=T0, end=T0 + timedelta(minutes=1))

    left, right = body["deployments"]
    assert (left["deployment"], left["requests"], left["live_requests"]) == ("blue", 1200, 1200)
    assert left["requests_per_second"] == 20.0
    assert left["status"]["5xx"] == 24
    assert left["error_rate"] == 0.02
    assert (right["requests"], right["mirrored_requests"], right["error_rate"]) == (120, 120, 0.0)
    for side, requests in ((left, blue), (right, green)):
        value = float(np.percentile([r.latency_ms for r in requests], 95, method="inverted_cdf"))
        assert side["latency_ms"]["p95"] == histogram.bucket_upper_ms(histogram.bucket_index(value))
    (agreement,) = body["agreement"]
    assert (agreement["deployment"], agreement["compared"], agreement["agreed"]) == ("green", 20, 15)


def test_compare_refuses_bad_input_with_clear_messages() -> None:
    with pytest.raises(ApplicationError, match="b: compare two different deployments, got 'blue' twice"):
        compare.deployments_compare(endpoint="ep1", a="blue", b="blue", start=T0, end=T0 + timedelta(minutes=1))
    with pytest.raises(ApplicationError, match="tolerance: expected a number like 1e-6, got 'tight'"):
        compare.tolerance_parse("tight")
    assert compare.tolerance_parse(None) == 1e-6


def test_mirror_pairs_are_pruned_after_their_retention() -> None:
    push_pairs([pair(0, {"y": 1}, {"y": 1})])
    services.mirror_pairs_ingest()
    assert services.metrics_prune(now=T0 + timedelta(days=6))["mirror_pairs"] == 0
    assert services.metrics_prune(now=T0 + timedelta(days=8))["mirror_pairs"] == 1
