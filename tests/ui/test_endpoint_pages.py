"""The endpoint pages: the create wizard, the deployment cards, traffic, test, consume, logs, events."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client

from apps.endpoints import selectors, services
from apps.endpoints.models import Deployment, Endpoint
from tests import factories


def wizard_data(name: str = "ep1", **overrides: Any) -> dict[str, Any]:
    model = factories.model("iris")
    environment = factories.environment("sk-env")
    code = io.BytesIO(factories.SCORE_PY.encode())
    code.name = "score.py"
    data = {
        "name": name,
        "auth_mode": "key",
        "description": "",
        "deployment_name": "blue",
        "model": model.asset_id,
        "code_files": code,
        "scoring_script": "score.py",
        "environment": environment.asset_id,
        "instance_type": "Standard_DS2_v2",
        "instance_count": "1",
        "all_traffic": "on",
    }
    data.update(overrides)
    return data


def test_wizard_shows_steps_prices_and_quota(browser: Client) -> None:
    factories.model("iris")
    factories.environment("sk-env")
    html = browser.get("/endpoints/new/").content.decode()
    for step in ("1. Endpoint", "2. Deployment", "3. Review"):
        assert step in html
    assert "Standard_DS3_v2 · 4 vCPU · 14 GiB · $0.2930/h" in html
    assert "100 of 100 cores are free" in html
    # The estimate of the size shown (DS3, one instance) is in the page; htmx fetches it again as the size changes.
    assert "1 × Standard_DS3_v2 at 0.2930 USD/h = 7.03 USD a day, about 213.89 USD a month" in html
    assert "needs 8 cores (ceil(1.2 × 1) × 4 vCPUs); 100 free" in html


def test_wizard_estimate_follows_the_size_chosen(browser: Client) -> None:
    html = browser.get("/endpoints/new/estimate/?instance_type=Standard_DS2_v2&instance_count=3").content.decode()
    assert html.startswith('<div class="card" id="deployment-estimate"')
    assert "3 × Standard_DS2_v2 at 0.1460 USD/h = 10.51 USD a day, about 319.74 USD a month" in html
    assert "needs 8 cores (ceil(1.2 × 3) × 2 vCPUs); 100 free" in html
    too_big = browser.get("/endpoints/new/estimate/?instance_type=Standard_NC24ads_A100_v4&instance_count=5")
    assert "needs 144 cores (ceil(1.2 × 5) × 24 vCPUs); 100 free — not enough" in too_big.content.decode()
    for query in ("instance_type=Huge_VM&instance_count=1", "instance_type=Standard_DS2_v2&instance_count=0"):
        assert "<span data-estimate-price>—</span>" in browser.get(f"/endpoints/new/estimate/?{query}").content.decode()


def test_wizard_without_models_says_to_register_one_first(browser: Client) -> None:
    html = browser.get("/endpoints/new/").content.decode()
    assert "There is no model to deploy yet" in html and "There is no environment yet" in html


def test_wizard_creates_endpoint_and_first_deployment_with_all_traffic(browser: Client, post: Any) -> None:
    response = post("/endpoints/new/", wizard_data())
    assert response.status_code == 303, response.content.decode()[:3000]
    assert response["Location"] == "/endpoints/ep1/"
    endpoint = Endpoint.objects.get(name="ep1")
    assert endpoint.traffic == {"blue": 100}
    deployment = Deployment.objects.get(endpoint=endpoint, name="blue")
    assert deployment.state == "Creating" and deployment.scoring_script == "score.py"
    page = browser.get("/endpoints/ep1/").content.decode()
    assert f'id="deployment-{deployment.uid}-card"' in page
    assert "Creating" in page and "Building environment" in page and "100 % live" in page
    assert "every 3s" in page  # the card polls while the deployment is busy, as well as listening on the socket


def test_wizard_error_names_the_field_and_creates_nothing(browser: Client, post: Any) -> None:
    response = post("/endpoints/new/", wizard_data(scoring_script="missing.py"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "&#x27;missing.py&#x27; is not a file in the code folder (it has: score.py)" in html
    assert "Choose the code files again" in html
    assert not Endpoint.objects.exists()


def test_wizard_bad_endpoint_name_is_a_form_error(browser: Client, post: Any) -> None:
    response = post("/endpoints/new/", wizard_data(name="1bad"))
    assert response.status_code == 400
    assert "must be 3 to 32 letters, digits or single dashes, starting with a letter" in response.content.decode()


def test_wizard_out_of_quota_is_shown(browser: Client, post: Any, settings: Any) -> None:
    settings.STUDIO_CORE_QUOTA = 4
    response = post("/endpoints/new/", wizard_data(instance_count="3"))
    assert response.status_code == 400
    assert "OutOfQuota: instance_count 3 of Standard_DS2_v2 needs 8 cores" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_existing_endpoint_name_is_refused(browser: Client, post: Any) -> None:
    factories.endpoint("ep1")
    response = post("/endpoints/new/", wizard_data())
    assert response.status_code == 400
    assert "online endpoint &#x27;ep1&#x27; already exists" in response.content.decode()


@pytest.fixture
def served(db: None) -> Endpoint:
    """ep1 with blue taking all traffic and green taking none."""
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    return services.traffic_set(endpoint=endpoint, traffic={"blue": 100, "green": 0})


def test_add_deployment_takes_no_traffic(browser: Client, post: Any, served: Endpoint) -> None:
    data = wizard_data()
    data["deployment_name"] = "red"
    response = post("/endpoints/ep1/deployments/new/", data)
    assert response.status_code == 303
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 100, "green": 0, "red": 0}


def test_traffic_tab_shows_a_slider_per_deployment(browser: Client, served: Endpoint) -> None:
    html = browser.get("/endpoints/ep1/traffic/").content.decode()
    assert 'data-traffic-slider="blue"' in html and 'data-traffic-slider="green"' in html
    assert 'name="traffic_blue"' in html and 'value="100"' in html
    assert "No traffic changes yet" not in html  # the fixture's change is in the history


def test_traffic_tab_says_what_the_split_costs_and_which_deployment_would_idle(
    browser: Client, served: Endpoint
) -> None:
    # blue and green: one Standard_DS2_v2 each, 0.1460 an hour, 3.504 a day: 7.008 a day together.
    page = browser.get("/endpoints/ep1/traffic/").content.decode()
    assert "Instances cost 7.01 USD a day whatever the split: moving traffic changes no bill." in page
    assert "After this change green serves nothing yet costs 3.50 USD a day" in page
    # The line follows the split being edited (htmx fetches it as the sliders move).
    fragment = browser.get("/endpoints/ep1/traffic/cost/?traffic_blue=60&traffic_green=30").content.decode()
    assert fragment.startswith('<div class="card" id="traffic-cost"')
    assert "The split must add up to 100 % (now 90 %). Instances cost 7.01 USD a day" in fragment
    assert "After this change" not in fragment
    mirrored = "/endpoints/ep1/traffic/cost/?traffic_blue=100&traffic_green=0&mirror_enabled=on&mirror_deployment=green"
    assert "After this change" not in browser.get(mirrored).content.decode()  # a mirror serves copies


def test_apply_traffic_stores_it_and_shows_the_history(browser: Client, post: Any, served: Endpoint) -> None:
    response = post("/endpoints/ep1/traffic/", {"traffic_blue": "90", "traffic_green": "10"}, htmx=True)
    assert response.status_code == 204 and response["HX-Redirect"] == "/endpoints/ep1/traffic/"
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 90, "green": 10}
    html = browser.get("/endpoints/ep1/traffic/").content.decode()
    assert "blue=90 green=10" in html and "alice" in html and "Traffic applied." in html


def test_traffic_that_does_not_sum_to_100_is_a_form_error(browser: Client, post: Any, served: Endpoint) -> None:
    plain = post("/endpoints/ep1/traffic/", {"traffic_blue": "90", "traffic_green": "5"})
    assert plain.status_code == 400  # a browser without JavaScript gets the page with the error
    # htmx swaps only 2xx answers (and a 4xx is a console error): the fragment with its error is a 200.
    response = post("/endpoints/ep1/traffic/", {"traffic_blue": "90", "traffic_green": "5"}, htmx=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="traffic-panel" ')  # the fragment, swapped in place
    assert "traffic: must sum to 0 or 100, got 95 (blue=90 green=5)" in html
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 100, "green": 0}


def test_mirror_is_stored_and_its_rules_are_form_errors(browser: Client, post: Any, served: Endpoint) -> None:
    base = {"traffic_blue": "100", "traffic_green": "0", "mirror_enabled": "on", "mirror_deployment": "green"}
    too_much = post("/endpoints/ep1/traffic/", {**base, "mirror_percent": "60"})
    assert too_much.status_code == 400
    assert "Ensure this value is less than or equal to 50" in too_much.content.decode()
    live = post(
        "/endpoints/ep1/traffic/",
        {**base, "mirror_deployment": "blue", "mirror_percent": "10"},
    )
    assert live.status_code == 400
    assert "a deployment cannot take live and mirrored traffic" in live.content.decode()
    ok = post("/endpoints/ep1/traffic/", {**base, "mirror_percent": "10"})
    assert ok.status_code == 303
    assert Endpoint.objects.get(name="ep1").mirror_traffic == {"green": 10}


def test_revert_puts_back_the_previous_split(browser: Client, post: Any, served: Endpoint) -> None:
    post("/endpoints/ep1/traffic/", {"traffic_blue": "90", "traffic_green": "10"})
    change = selectors.traffic_changes(endpoint=served).first()  # newest first
    assert change is not None and change.traffic_after == {"blue": 90, "green": 10}
    response = post(f"/endpoints/ep1/traffic/{change.pk}/revert/")
    assert response.status_code == 303
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 100, "green": 0}
    assert "Traffic reverted." in browser.get("/endpoints/ep1/traffic/").content.decode()


def test_delete_is_refused_with_the_reason_while_it_has_traffic(browser: Client, post: Any, served: Endpoint) -> None:
    assert post("/endpoints/ep1/deployments/blue/delete/").status_code == 409
    response = post("/endpoints/ep1/deployments/blue/delete/", htmx=True)
    assert response.status_code == 200
    assert "deployment &#x27;blue&#x27; takes 100 % of the live traffic" in response.content.decode()
    assert Deployment.objects.get(name="blue").state != "Deleting"
    ok = post("/endpoints/ep1/deployments/green/delete/", htmx=True)
    assert ok.status_code == 200 and "Deleting" in ok.content.decode()
    assert Deployment.objects.get(name="green").state == "Deleting"


def test_scale_changes_the_count_and_shows_scaling(browser: Client, post: Any, served: Endpoint) -> None:
    response = post("/endpoints/ep1/deployments/blue/scale/", {"instance_count": "2"}, htmx=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Scaling" in html and "of 2" in html
    assert Deployment.objects.get(name="blue").instance_count == 2
    bad = post("/endpoints/ep1/deployments/blue/scale/", {"instance_count": "0"}, htmx=True)
    assert (
        bad.status_code == 200
        and "instance_count: Ensure this value is greater than or equal to 1" in bad.content.decode()
    )


def test_keys_are_hidden_until_shown_and_can_be_regenerated(browser: Client, post: Any, served: Endpoint) -> None:
    page = browser.get("/endpoints/ep1/consume/").content.decode()
    assert served.primary_key not in page and served.secondary_key not in page
    assert "Keys are hidden" in page and served.scoring_uri in page and served.openapi_uri in page
    for sample in ("sample-curl", "sample-python", "sample-javascript"):
        assert f'id="{sample}"' in page
    shown = post("/endpoints/ep1/consume/keys/", htmx=True).content.decode()
    assert served.primary_key in shown and served.secondary_key in shown
    regenerated = post("/endpoints/ep1/consume/keys/", {"regenerate": "primary"}, htmx=True).content.decode()
    fresh = Endpoint.objects.get(name="ep1")
    assert fresh.primary_key != served.primary_key and fresh.secondary_key == served.secondary_key
    assert fresh.primary_key in regenerated and "The primary key was regenerated" in regenerated


def test_aml_token_endpoint_gives_a_token(browser: Client, post: Any) -> None:
    factories.endpoint("tok-ep", auth_mode="aml_token")
    page = browser.get("/endpoints/tok-ep/consume/").content.decode()
    assert "Get token" in page and "Show keys" not in page
    token = post("/endpoints/tok-ep/consume/token/", htmx=True).content.decode()
    assert 'id="access-token"' in token and "Expires" in token


class _Gateway(BaseHTTPRequestHandler):
    """Answers like the scoring gateway: the deployment that served and a request id."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        payload = json.dumps(
            {"echo": json.loads(body), "auth": self.headers["Authorization"][:7], "path": self.path}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("azureml-model-deployment", self.headers.get("azureml-model-deployment") or "blue")
        self.send_header("x-request-id", "req-123")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway(settings: Any) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.STUDIO_GATEWAY_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield settings.STUDIO_GATEWAY_URL
    server.shutdown()
    server.server_close()


def test_test_tab_posts_through_the_gateway_and_shows_the_answer(
    browser: Client, post: Any, served: Endpoint, gateway: str
) -> None:
    response = post("/endpoints/ep1/test/", {"body": '{"data": [1]}', "deployment": "green"}, htmx=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="test-panel">')
    assert 'id="test-status">200<' in html and 'id="test-deployment">green<' in html
    assert "req-123" in html and "/endpoints/ep1/score" in html and "Bearer " in html


def test_test_tab_says_when_the_gateway_is_down(browser: Client, post: Any, served: Endpoint, settings: Any) -> None:
    settings.STUDIO_GATEWAY_URL = "http://127.0.0.1:9"
    response = post("/endpoints/ep1/test/", {"body": '{"data": [1]}', "deployment": ""}, htmx=True)
    assert response.status_code == 200
    assert "the scoring gateway at http://127.0.0.1:9 did not answer" in response.content.decode()


def test_test_tab_refuses_a_body_that_is_not_json(browser: Client, post: Any, served: Endpoint) -> None:
    response = post("/endpoints/ep1/test/", {"body": "{nope", "deployment": ""})
    assert response.status_code == 400
    assert "the body is not valid JSON" in response.content.decode()


def test_events_tab_shows_the_timeline(browser: Client, served: Endpoint) -> None:
    html = browser.get("/endpoints/ep1/events/").content.decode()
    assert "Creating" in html and "generation 1: 1 × Standard_DS2_v2" in html
    only_green = browser.get("/endpoints/ep1/events/?deployment=green").content.decode()
    assert "<td>green" in only_green and "<td>blue" not in only_green


def test_logs_tab_has_its_controls_and_a_bad_container_is_an_error(browser: Client, served: Endpoint) -> None:
    html = browser.get("/endpoints/ep1/logs/").content.decode()
    for control in (
        'name="deployment"',
        'name="container"',
        'name="lines"',
        'name="search"',
        "logs-follow",
        "Download",
    ):
        assert control in html
    bad = browser.get("/endpoints/ep1/logs/?container=sidecar").content.decode()
    assert "Select a valid choice. sidecar is not one of the available choices." in bad


def test_monitoring_and_costs_tabs_render_with_empty_states(browser: Client, served: Endpoint) -> None:
    monitoring = browser.get("/endpoints/ep1/monitoring/").content.decode()
    assert "/vendor/plotly.min.js" in monitoring and "charts-empty" in monitoring
    costs = browser.get("/endpoints/ep1/costs/").content.decode()
    assert "3.50 USD" in costs and "No cost recorded yet" in costs


def test_changing_the_instance_type_rolls_the_deployment_out(browser: Client, post: Any, served: Endpoint) -> None:
    response = post(
        "/endpoints/ep1/deployments/blue/scale/",
        {"instance_type": "Standard_DS3_v2", "instance_count": "1"},
        htmx=True,
    )
    assert response.status_code == 200
    assert "Updating" in response.content.decode()
    blue = Deployment.objects.get(name="blue")
    assert blue.instance_type == "Standard_DS3_v2" and blue.state == "Updating"
    unknown = post(
        "/endpoints/ep1/deployments/blue/scale/", {"instance_type": "Huge_VM", "instance_count": "1"}, htmx=True
    )
    assert unknown.status_code == 200 and "Huge_VM is not one of the available choices" in unknown.content.decode()


def test_details_fragment_and_a_deleted_deployments_card(browser: Client, served: Endpoint) -> None:
    fragment = browser.get("/endpoints/ep1/", HTTP_HX_REQUEST="true").content.decode()
    assert fragment.startswith('<div id="deployment-cards"') and "green" in fragment
    Deployment.objects.filter(name="green").delete()
    gone = browser.get("/endpoints/ep1/deployments/green/", HTTP_HX_REQUEST="true")
    assert gone.status_code == 200 and "Deployment green was deleted." in gone.content.decode()


def test_logs_download_is_an_attachment(browser: Client, served: Endpoint) -> None:
    response = browser.get("/endpoints/ep1/logs/?deployment=blue&container=storage-initializer&lines=10&download=1")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="ep1-blue-storage-initializer.log"'
    assert response["Content-Type"].startswith("text/plain")


def test_delete_endpoint_marks_it_and_its_deployments_deleting(browser: Client, post: Any, served: Endpoint) -> None:
    response = post("/endpoints/ep1/delete/")
    assert response.status_code == 303 and response["Location"] == "/endpoints/"
    assert Endpoint.objects.get(name="ep1").provisioning_state == "Deleting"
    assert set(Deployment.objects.values_list("state", flat=True)) == {"Deleting"}
    assert "Deleting online endpoint ep1 and its deployments." in browser.get("/endpoints/").content.decode()
