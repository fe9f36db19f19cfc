"""Routing changes reach every running gateway, under load, without a failed request.

How fast they arrive is a figure the tests print (-s), not something they assert.
"""

from __future__ import annotations

import time

import httpx

from apps.core.notify import ROUTING_VERSION_KEY, publish, redis_client
from apps.endpoints import services
from apps.endpoints.models import Instance
from tests.gateway.conftest import Load, bearer, make_deployment, make_endpoint, routing_changed, set_traffic


def test_a_traffic_change_under_load_applies_with_no_failed_request(start_instance, gateway) -> None:
    blue, green = start_instance("blue-0"), start_instance("green-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue, max_concurrent_requests_per_instance=8)
    make_deployment(ep, "green", green, max_concurrent_requests_per_instance=8)
    set_traffic(ep, {"blue": 100, "green": 0})
    gateway.wait_for(lambda: gateway.knows("ep1", "green", instances=1) and gateway.state.config.table["ep1"].weights)

    with Load(gateway.score_url("ep1"), bearer(ep), clients=4) as load:
        load.wait_for_answers(40)
        changing_at = time.monotonic()
        set_traffic(ep, {"blue": 0, "green": 100})  # commits, then bumps the routing version
        changed_at = time.monotonic()
        gateway.wait_for(lambda: gateway.state.config.table["ep1"].weights == (("green", 100),))
        applied_at = time.monotonic()
        load.wait_for_answers(len(load.shots) + 40)

    assert load.failures() == []
    before = [s for s in load.shots if s.done < changing_at]
    after = [s for s in load.shots if s.sent > applied_at]
    assert before and {s.deployment for s in before} == {"blue"}
    assert after and {s.deployment for s in after} == {"green"}
    print(f"the gateway applied the change {(applied_at - changed_at) * 1000:.0f} ms after it was committed")


def test_an_instance_turning_unready_stops_getting_requests_without_failures(start_instance, gateway) -> None:
    first, second = start_instance("blue-0"), start_instance("blue-1")
    ep = make_endpoint("ep1")
    deployment = make_deployment(ep, "blue", first, second, max_concurrent_requests_per_instance=8)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=2) and gateway.state.config.table["ep1"].weights)

    with Load(gateway.score_url("ep1"), bearer(ep), clients=4) as load:
        load.wait_for_answers(40)
        changing_at = time.monotonic()
        Instance.objects.filter(deployment=deployment, address=first.address).update(ready=False, state="Unready")
        routing_changed()
        gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1))
        applied_at = time.monotonic()
        load.wait_for_answers(len(load.shots) + 40)

    assert load.failures() == []
    late = [s for s in load.shots if s.sent > applied_at]
    assert late and all('"blue-1"' in s.body for s in late)
    assert any('"blue-0"' in s.body for s in load.shots if s.done < changing_at)


def test_a_new_ready_instance_takes_requests(start_instance, gateway) -> None:
    first = start_instance("blue-0")
    ep = make_endpoint("ep1")
    deployment = make_deployment(ep, "blue", first, max_concurrent_requests_per_instance=8)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)
    second = start_instance("blue-1")

    Instance.objects.create(deployment=deployment, name="blue-1", address=second.address, state="Ready", ready=True)
    routing_changed()
    waited = gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=2))

    with httpx.Client() as client:
        bodies = [client.post(gateway.score_url("ep1"), json={}, headers=bearer(ep)).text for _ in range(20)]
    assert any('"blue-1"' in body for body in bodies)
    print(f"new instance routable after {waited * 1000:.0f} ms")


def test_the_table_is_reloaded_periodically_even_without_a_bump(start_instance, start_gateway) -> None:
    gateway = start_gateway(reload_s=1.0)
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    deployment = make_deployment(ep, "blue", max_concurrent_requests_per_instance=8)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=0) and gateway.state.config.table["ep1"].weights)

    # A writer that forgot to bump the routing version: picked up by the periodic reload.
    Instance.objects.create(deployment=deployment, name="blue-0", address=blue.address, state="Ready", ready=True)

    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1))
    assert httpx.post(gateway.score_url("ep1"), json={}, headers=bearer(ep)).status_code == 200


def test_every_gateway_process_picks_up_a_change(start_instance, start_gateway) -> None:
    blue, green = start_instance("blue-0"), start_instance("green-0")
    # No periodic reload during the test: only the routing version each of them polls can tell them.
    gateways = [start_gateway(reload_s=3600), start_gateway(reload_s=3600)]
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    make_deployment(ep, "green", green)
    set_traffic(ep, {"blue": 100, "green": 0})
    for gateway in gateways:
        gateway.wait_for(lambda g=gateway: g.knows("ep1", "green", instances=1) and g.state.config.table["ep1"].weights)

    set_traffic(ep, {"blue": 0, "green": 100})

    for gateway in gateways:
        url = gateway.score_url("ep1")
        gateway.wait_for(
            lambda u=url: httpx.post(u, json={}, headers=bearer(ep)).headers["azureml-model-deployment"] == "green"
        )


def test_a_change_to_one_endpoint_reloads_only_that_endpoint(start_instance, start_gateway) -> None:
    blue = start_instance("blue-0")
    gateway = start_gateway(reload_s=3600)  # no periodic full reload during the test
    endpoints = [make_endpoint(f"ep{i}") for i in range(3)]
    for ep in endpoints:
        make_deployment(ep, "blue", blue)
        make_deployment(ep, "green", blue)
        set_traffic(ep, {"blue": 100, "green": 0})
    config = gateway.state.config
    gateway.wait_for(lambda: config.applied_seq == int(redis_client().get(ROUTING_VERSION_KEY)))  # every change heard
    gateway.wait_for(lambda: all(config.table.get(f"ep{i}") and config.table[f"ep{i}"].weights for i in range(3)))
    full_reloads, untouched = config.reloads, {name: config.table[name] for name in ("ep0", "ep2")}

    set_traffic(endpoints[1], {"blue": 0, "green": 100})

    gateway.wait_for(lambda: config.table["ep1"].weights == (("green", 100),))
    assert config.last_partial == {"ep1"}
    assert config.reloads == full_reloads  # nothing but ep1 was read again
    assert all(config.table[name] is table for name, table in untouched.items())  # the same objects, not re-read
    response = httpx.post(gateway.score_url("ep1"), json={}, headers=bearer(endpoints[1]))
    assert response.headers["azureml-model-deployment"] == "green"

    # A deleted endpoint leaves the table through the same feed.
    services.endpoint_delete(endpoint=endpoints[2])
    gateway.wait_for(lambda: "ep2" not in config.table)
    assert config.reloads == full_reloads


def test_a_gap_in_the_change_feed_reloads_the_whole_table(start_instance, start_gateway) -> None:
    gateway = start_gateway(reload_s=3600)
    ep = make_endpoint("ep1")
    config = gateway.state.config
    gateway.wait_for(lambda: gateway.knows("ep1"))
    full_reloads = config.reloads
    # A row written without a message, then a message lost: the next message does not follow the last one.
    blue = start_instance("blue-0")
    deployment = make_deployment(ep, "blue")
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=0))
    gateway.wait_for(lambda: config.applied_seq == int(redis_client().get(ROUTING_VERSION_KEY)))
    full_reloads = config.reloads
    Instance.objects.create(deployment=deployment, name="blue-0", address=blue.address, state="Ready", ready=True)
    redis_client().incr(ROUTING_VERSION_KEY)  # the lost message's sequence number

    publish(["some-other-endpoint"])

    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1))
    assert config.reloads == full_reloads + 1
