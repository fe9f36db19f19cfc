"""The Traffic tab and the deployment cards send the version they were drawn from; the rollout panel."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.endpoints import services
from apps.endpoints.models import Deployment, Endpoint, ProvisioningState
from apps.rollouts.models import Rollout
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(db: None) -> Endpoint:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    Deployment.objects.filter(endpoint=endpoint).update(state=ProvisioningState.SUCCEEDED)
    return services.traffic_set(endpoint=endpoint, traffic={"blue": 90, "green": 10})


def test_a_stale_traffic_apply_is_refused_and_the_form_shows_the_current_split(
    browser: Client, post: Any, served: Endpoint
) -> None:
    page = browser.get("/endpoints/ep1/traffic/").content.decode()
    assert f'name="version" value="{served.version}"' in page
    services.traffic_set(endpoint=served, traffic={"blue": 50, "green": 50}, user=factories.user("bob"))

    response = post(
        "/endpoints/ep1/traffic/",
        {"traffic_blue": "90", "traffic_green": "10", "version": str(served.version)},
        htmx=True,
    )

    html = response.content.decode()
    assert "Not applied: online endpoint &#x27;ep1&#x27; changed since version" in html
    assert "blue=90 green=10 → blue=50 green=50 by bob" in html
    assert 'name="traffic_blue" id="id_traffic_blue" min="0" max="100" step="1" inputmode="numeric" value="50"' in html
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 50, "green": 50}


def test_a_stale_size_change_on_a_card_is_refused_and_the_card_shows_the_current_count(
    browser: Client, post: Any, served: Endpoint
) -> None:
    blue = served.deployments.get(name="blue")
    services.deployment_scale(deployment=blue, instance_count=3, reason="by bob", user=factories.user("bob"))
    response = post(
        "/endpoints/ep1/deployments/blue/scale/", {"instance_count": "2", "version": str(blue.version)}, htmx=True
    )
    html = response.content.decode()
    assert "Not applied: deployment &#x27;blue&#x27; of &#x27;ep1&#x27; changed since version 1" in html
    assert "instance_count 1 → 3 by bob" in html
    assert Deployment.objects.get(name="blue").instance_count == 3


def test_start_a_rollout_from_the_traffic_tab_and_see_its_panel_and_list_badge(
    browser: Client, post: Any, served: Endpoint
) -> None:
    services.traffic_set(endpoint=served, traffic={"blue": 100, "green": 0})
    page = browser.get("/endpoints/ep1/traffic/").content.decode()
    assert "Start a rollout" in page and 'value="10, 25, 50, 100"' in page
    started = post(
        "/endpoints/ep1/rollout/start/",
        {
            "rollout-deployment": "green",
            "rollout-steps": "20, 100",
            "rollout-step_duration": "30s",
            "rollout-min_requests": "50",
            "rollout-max_error_rate": "1",
            "rollout-max_p99_ratio": "1.5",
            "rollout-on_failure": "rollback",
        },
        htmx=True,
    )
    assert started.status_code == 204 and started["HX-Redirect"] == "/endpoints/ep1/traffic/"
    assert Rollout.objects.get().state == "Running"
    panel = browser.get("/endpoints/ep1/rollout/").content.decode()
    assert "Rollout to green" in panel and 'aria-current="step" class="current">step 1: 20 %' in panel
    assert "Pause" in panel and "Promote now" in panel and "Abort" in panel
    listing = browser.get("/endpoints/").content.decode()
    assert "rollout running: green 20 %" in listing

    refused = post("/endpoints/ep1/traffic/", {"traffic_blue": "100", "traffic_green": "0"}, htmx=True)
    assert "has a rollout of &#x27;green&#x27; in progress" in refused.content.decode()

    post("/endpoints/ep1/rollout/abort/")
    assert Rollout.objects.get().state == "Aborted"
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 100, "green": 0}


def test_a_bad_rollout_form_names_the_field(browser: Client, post: Any, served: Endpoint) -> None:
    services.traffic_set(endpoint=served, traffic={"blue": 100, "green": 0})
    response = post(
        "/endpoints/ep1/rollout/start/",
        {
            "rollout-deployment": "green",
            "rollout-steps": "50, 20",
            "rollout-step_duration": "30s",
            "rollout-min_requests": "50",
            "rollout-max_error_rate": "1",
            "rollout-max_p99_ratio": "1.5",
            "rollout-on_failure": "rollback",
        },
        htmx=True,
    )
    assert "steps: must rise step by step, got 20 after 50" in response.content.decode()
    assert not Rollout.objects.exists()


def test_monitoring_and_costs_tabs_show_what_serves_now_and_redraw_it_from_the_traffic_push(
    browser: Client, served: Endpoint
) -> None:
    for tab in ("monitoring", "costs"):
        page = browser.get(f"/endpoints/ep1/{tab}/").content.decode()
        strip = page.split('id="serving-now"')[1].split("</section>")[0]
        assert 'data-refresh-on="deployment.state endpoint.traffic" data-refresh-endpoint="ep1"' in strip
        assert 'hx-get="/endpoints/ep1/serving/"' in strip
        assert '<td>blue</td><td class="num">90 %</td>' in strip
        assert '<td>green</td><td class="num">10 %</td>' in strip
    services.traffic_set(endpoint=served, traffic={"blue": 0, "green": 100}, mirror_traffic={"blue": 20})
    services.deployment_scale(deployment=served.deployments.get(name="green"), instance_count=3, reason="more")
    strip = browser.get("/endpoints/ep1/serving/").content.decode()
    assert 'id="serving-now"' in strip
    rows = [row.split("</tr>")[0] for row in strip.split("<tr id=")[1:]]
    assert '<td>green</td><td class="num">100 %</td><td class="num">—</td><td>0 of 3 ready</td>' in rows[0]
    assert '<td>blue</td><td class="num">0 %</td><td class="num">20 %</td>' in rows[1]


def test_the_details_traffic_summary_redraws_itself_on_a_traffic_push(browser: Client, served: Endpoint) -> None:
    page = browser.get("/endpoints/ep1/").content.decode()
    summary = page.split('id="traffic-summary"')[1].split(">")[0]
    assert 'hx-select="#traffic-summary"' in summary and 'data-refresh-on="endpoint.traffic"' in summary
    services.traffic_set(endpoint=served, traffic={"blue": 0, "green": 100}, mirror_traffic={"blue": 20})
    fragment = browser.get("/endpoints/ep1/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="traffic-summary")
    html = fragment.content.decode().split('id="traffic-summary"')[1]
    assert "<td>green</td><td>100 %</td>" in html and "Mirrored: 20 % to blue" in html
