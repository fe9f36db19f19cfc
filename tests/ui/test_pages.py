"""Every page: sign-in required, renders for a signed-in user, empty states, escaping, CSRF."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.test import Client

from apps.endpoints import services
from apps.endpoints.models import Deployment, Model
from tests import factories

PAGES = [
    "/",
    "/models/",
    "/models/new/",
    "/environments/",
    "/environments/new/",
    "/endpoints/",
    "/endpoints/new/",
    "/monitoring/",
    "/costs/",
]
ENDPOINT_TABS = ["", "traffic/", "test/", "consume/", "monitoring/", "logs/", "events/", "costs/", "deployments/new/"]


@pytest.mark.parametrize("url", PAGES + [f"/endpoints/ep1/{tab}" for tab in ENDPOINT_TABS])
def test_every_page_sends_a_signed_out_visitor_to_sign_in(db: None, client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_sign_in_page_signs_in_and_shows_the_user_in_the_navigation(db: None, client: Client) -> None:
    factories.user("alice", password="correct-horse-battery")
    page = client.get("/login/")
    assert page.status_code == 200 and b"Sign in to Studio" in page.content
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b"Please enter a correct username and password" in wrong.content
    response = client.post("/login/", {"username": "alice", "password": "correct-horse-battery"}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="signed-in-user">alice<' in html
    for label in ("Models", "Environments", "Endpoints", "Monitoring", "Costs"):
        assert f">{label}</a>" in html


@pytest.mark.parametrize(
    ("url", "empty"),
    [
        ("/models/", "No models yet"),
        ("/environments/", "No environments yet"),
        ("/endpoints/", "No endpoints yet"),
        ("/monitoring/", "Nothing to monitor yet"),
        ("/costs/", "No endpoints, so no costs yet"),
    ],
)
def test_every_list_has_a_clear_empty_state(browser: Client, url: str, empty: str) -> None:
    response = browser.get(url)
    assert response.status_code == 200
    assert empty in response.content.decode()


def test_every_page_carries_the_csrf_token_once_on_body_and_no_cdn(browser: Client) -> None:
    html = browser.get("/endpoints/").content.decode()
    assert '<body hx-headers=\'{"X-CSRFToken": "' in html
    assert "/static/vendor/htmx/htmx.min.js" in html
    assert "https://" not in html.split("<main")[0]  # every asset from the studio itself


def test_htmx_and_plotly_are_served_by_the_studio(browser: Client) -> None:
    htmx = browser.get("/static/vendor/htmx/htmx.min.js")
    assert htmx.status_code == 200
    assert b"htmx" in b"".join(htmx.streaming_content if htmx.streaming else [htmx.content])[:2000]
    plotly = browser.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and plotly["Content-Type"].startswith("text/javascript")
    head = next(iter(plotly.streaming_content))
    assert b"plotly" in head.lower()


def test_post_without_csrf_token_is_refused(browser: Client) -> None:
    factories.endpoint("ep1")
    response = browser.post("/endpoints/ep1/consume/keys/", {})
    assert response.status_code == 403


def test_model_register_one_file_then_again_increments_the_version(browser: Client, post: Any) -> None:
    for expected in (1, 2):
        response = post(
            "/models/new/", {"name": "iris", "type": "custom_model", "files": io.BytesIO(b"w"), "description": "d"}
        )
        assert response.status_code == 303, response.content.decode()[:2000]
        assert response["Location"] == "/models/iris/"
        assert Model.objects.get(name="iris", version=expected).path_name
    page = browser.get("/models/iris/").content.decode()
    assert "Version 2" in page and "Version 1" in page
    assert "No deployment uses version 2" in page


def test_model_register_several_files_keeps_them_in_one_folder(browser: Client, post: Any) -> None:
    one, two = io.BytesIO(b"a"), io.BytesIO(b"b")
    one.name, two.name = "weights.bin", "config.json"
    response = post("/models/new/", {"name": "bert", "type": "custom_model", "files": [one, two]})
    assert response.status_code == 303
    model = Model.objects.get(name="bert")
    assert model.is_folder and model.file_count == 2
    page = browser.get("/models/bert/").content.decode()
    assert "bert/config.json" in page and "bert/weights.bin" in page


def test_model_register_unpacks_a_zip_archive(browser: Client, post: Any) -> None:
    archive = io.BytesIO(factories.zip_folder({"model/a.txt": "1", "model/b.txt": "2"}))
    archive.name = "model.zip"
    response = post("/models/new/", {"name": "zipped", "files": archive, "unpack": "on", "type": "custom_model"})
    assert response.status_code == 303
    assert Model.objects.get(name="zipped").file_count == 2


def test_model_register_shows_form_errors_without_a_stack_trace(browser: Client, post: Any) -> None:
    response = post("/models/new/", {"name": "bad name!", "type": "custom_model", "files": io.BytesIO(b"w")})
    assert response.status_code == 400
    html = response.content.decode()
    assert "errorlist" in html and "name" in html and "Traceback" not in html
    not_archive = io.BytesIO(b"plain")
    not_archive.name = "weights.bin"
    response = post("/models/new/", {"name": "m", "type": "custom_model", "files": not_archive, "unpack": "on"})
    assert response.status_code == 400
    assert "is not a .zip, .tar, .tar.gz or .tgz archive" in response.content.decode()
    assert not Model.objects.exists()


def test_descriptions_and_messages_are_escaped(browser: Client, post: Any) -> None:
    post(
        "/models/new/",
        {"name": "x", "type": "custom_model", "files": io.BytesIO(b"w"), "description": "<script>alert(1)</script>"},
    )
    html = browser.get("/models/x/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    endpoint = factories.endpoint("ep1")
    deployment = factories.deployment(endpoint, "blue")
    Deployment.objects.filter(pk=deployment.pk).update(
        state="Failed", reason="UserScriptInitFailed", message="<img src=x onerror=alert(1)>"
    )
    html = browser.get("/endpoints/ep1/").content.decode()
    assert "<img src=x onerror" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_environment_create_and_detail(browser: Client, post: Any) -> None:
    response = post(
        "/environments/new/",
        {"name": "sk-env", "image": "python:3.11", "pip_requirements": "numpy\nscikit-learn", "conda_file": ""},
    )
    assert response.status_code == 303 and response["Location"] == "/environments/sk-env/"
    html = browser.get("/environments/sk-env/").content.decode()
    assert "Version 1" in html and "scikit-learn" in html
    assert "Not built yet" in html
    listing = browser.get("/environments/").content.decode()
    assert "sk-env" in listing and "python:3.11" in listing


def test_environment_without_image_or_packages_is_a_form_error(browser: Client, post: Any) -> None:
    response = post("/environments/new/", {"name": "empty-env", "image": "", "pip_requirements": "", "conda_file": ""})
    assert response.status_code == 400
    assert "an environment needs an image, a conda_file or pip_requirements" in response.content.decode()


def test_environment_bad_conda_yaml_is_a_form_error(browser: Client, post: Any) -> None:
    response = post("/environments/new/", {"name": "c-env", "conda_file": "dependencies: [\n  - x: :"})
    assert response.status_code == 400
    assert "is not valid YAML" in response.content.decode()


def test_unknown_objects_are_404(browser: Client) -> None:
    assert browser.get("/endpoints/nope/").status_code == 404
    assert browser.get("/models/nope/").status_code == 404
    assert browser.get("/environments/nope/").status_code == 404


def test_zip_helper_roundtrip() -> None:
    data = factories.zip_folder({"a/b.txt": "x"})
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a/b.txt"]


def test_monitoring_and_costs_pages_list_endpoints(browser: Client) -> None:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    monitoring = browser.get("/monitoring/").content.decode()
    assert "ep1" in monitoring and "blue" in monitoring
    costs = browser.get("/costs/").content.decode()
    # Standard_DS2_v2 at 0.146/h, one instance: 3.50 a day
    assert "ep1" in costs and "3.50 USD" in costs
    services.traffic_set(endpoint=endpoint, traffic={"blue": 100})
    listing = browser.get("/endpoints/").content.decode()
    assert "blue 100 %" in listing and "3.50 USD" in listing


def test_environment_detail_shows_the_build_log_once_built(browser: Client, settings: Any, tmp_path: Any) -> None:
    settings.STUDIO_ENVS_DIR = tmp_path
    environment = factories.environment("built-env")
    (tmp_path / f"{environment.spec_hash}.build.log").write_text("Resolved 12 packages\n<b>done</b>\n")
    html = browser.get("/environments/built-env/").content.decode()
    assert "Resolved 12 packages" in html and "&lt;b&gt;done&lt;/b&gt;" in html
    assert "Not built yet" not in html
