"""The Details tab's attributes, the deployment's spec (YAML view and download) and its Edit flow, Add
deployment's default model, Create from YAML, and the autoscale page: through Django's test client."""

from __future__ import annotations

import io
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.test import Client

from apps.costs import services as cost_services
from apps.endpoints import services
from apps.endpoints.events import event_record
from apps.endpoints.models import Deployment, Endpoint, Model
from tests import factories


def _deployment(**overrides: Any) -> Deployment:
    endpoint = factories.endpoint("ep1", description="scores iris", tags={"team": "ml"})
    return factories.deployment(endpoint, "blue", environment_variables={"MODE": "fast"}, **overrides)


def test_details_tab_shows_the_attributes_and_the_traffic_summary(browser: Client, user: Any) -> None:
    endpoint = services.endpoint_create(spec={"name": "ep1", "description": "scores iris"}, user=user)
    factories.deployment(endpoint, "blue")
    services.traffic_set(endpoint=endpoint, traffic={"blue": 100})
    html = browser.get("/endpoints/ep1/").content.decode()
    panel = html[html.index('id="endpoint-attributes"') :]
    assert '<dd id="endpoint-description">scores iris</dd>' in panel
    assert "<dt>Created by</dt><dd>alice</dd>" in panel
    assert "<dt>Auth mode</dt><dd>key</dd>" in panel
    assert "/endpoints/ep1/score" in panel and "/endpoints/ep1/swagger.json" in panel
    summary = panel[panel.index('id="traffic-summary"') :]
    assert "<td>blue</td><td>100 %</td>" in summary


def test_description_and_tags_are_edited_through_the_endpoint_service(post: Any) -> None:
    version = factories.endpoint("ep1").version
    answer = post(
        "/endpoints/ep1/edit/", {"description": "new words", "tags": "team=ml\nstage = prod", "version": version}
    )
    assert answer.status_code == 303
    endpoint = Endpoint.objects.get(name="ep1")
    assert (endpoint.description, endpoint.tags) == ("new words", {"team": "ml", "stage": "prod"})
    assert endpoint.version == version + 1
    refused = post("/endpoints/ep1/edit/", {"description": "x", "tags": "just-a-word", "version": endpoint.version})
    assert refused.status_code == 400
    assert "line 1: expected a tag as KEY=value, got &#x27;just-a-word&#x27;" in refused.content.decode()
    # A form drawn before the last change is refused with what changed, never saved over it.
    stale = post("/endpoints/ep1/edit/", {"description": "old form", "tags": "", "version": version})
    assert stale.status_code == 400
    assert f"online endpoint &#x27;ep1&#x27; changed since version {version}" in stale.content.decode()
    assert Endpoint.objects.get(name="ep1").description == "new words"
    html = post("/endpoints/ep1/edit/", {"description": "x", "tags": "", "version": endpoint.version})
    assert html.status_code == 303


def test_spec_is_shown_as_yaml_and_the_download_goes_back_unchanged(browser: Client) -> None:
    deployment = _deployment()
    page = browser.get("/endpoints/ep1/deployments/blue/spec/").content.decode()
    assert "environment_variables:\n  MODE: fast" in page
    download = browser.get("/endpoints/ep1/deployments/blue/deployment.yml")
    assert download["Content-Disposition"] == 'attachment; filename="ep1-blue-deployment.yml"'
    doc = yaml.safe_load(download.content)
    assert doc["$schema"].endswith("managedOnlineDeployment.schema.json")
    assert (doc["name"], doc["endpoint_name"], doc["instance_type"]) == ("blue", "ep1", "Standard_DS2_v2")
    assert doc["model"] == deployment.model.asset_id and doc["code_configuration"]["code"].startswith("code:")
    # The file is what `online-deployment update -f` takes: applied as it is, nothing changes.
    doc.pop("$schema")
    again = services.deployment_update(deployment=deployment, changes=doc)
    assert again.generation == deployment.generation
    endpoint_doc = yaml.safe_load(browser.get("/endpoints/ep1/endpoint.yml").content)
    assert endpoint_doc == {
        "$schema": "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
        "name": "ep1",
        "description": "scores iris",
        "tags": {"team": "ml"},
        "auth_mode": "key",
        "traffic": {"blue": 0},
    }


def _edit_data(browser: Client, **changes: str) -> dict[str, str]:
    """The edit form as the browser would send it: every field's current value, then the changes."""
    from apps.endpoints.forms import DeploymentEditForm

    viewer = get_user_model().objects.get(username="alice")
    form = DeploymentEditForm(deployment=Deployment.objects.get(name="blue"), viewer=viewer)
    data = {name: "" if form[name].value() is None else str(form[name].value()) for name in form.fields}
    data.pop("code_files")
    data.update(changes)
    return data


def test_edit_reviews_the_diff_then_applies_a_rolling_update(browser: Client, post: Any) -> None:
    deployment = _deployment()
    newer = factories.model(deployment.model.name)  # version 2 of the same model
    html = browser.get("/endpoints/ep1/deployments/blue/edit/").content.decode()
    assert "Liveness initial delay" in html and "Request timeout ms" in html
    data = _edit_data(browser, environment_variables="MODE=careful", model=newer.asset_id)
    review = post("/endpoints/ep1/deployments/blue/edit/", {**data, "action": "review"})
    assert review.status_code == 200
    diff = review.content.decode()
    assert '<span class="diff-del">-  MODE: fast</span>' in diff
    assert '<span class="diff-add">+  MODE: careful</span>' in diff
    assert f'<span class="diff-add">+model: {newer.asset_id}</span>' in diff
    assert Deployment.objects.get(pk=deployment.pk).generation == 1  # reviewing changes nothing
    applied = post("/endpoints/ep1/deployments/blue/edit/", {**data, "action": "apply"})
    assert applied.status_code == 303
    row = Deployment.objects.get(pk=deployment.pk)
    assert (row.generation, row.state, row.environment_variables) == (2, "Updating", {"MODE": "careful"})
    assert row.model == newer
    assert "changed environment_variables, model" in row.events.last().message


def test_edit_shows_the_schema_error_on_its_field_and_keeps_the_spec(post: Any, browser: Client) -> None:
    deployment = _deployment()
    data = _edit_data(browser, request_timeout_ms="999999", liveness_probe_success_threshold="1")
    answer = post("/endpoints/ep1/deployments/blue/edit/", {**data, "action": "apply"})
    assert answer.status_code == 400
    html = answer.content.decode()
    field = html[html.index('for="id_request_timeout_ms"') :]
    assert "request_settings.request_timeout_ms: expected an integer from 1 to 180000, got 999999" in field[:1500]
    assert Deployment.objects.get(pk=deployment.pk).generation == 1


def test_edit_with_new_code_keeps_the_upload_for_apply(post: Any, browser: Client) -> None:
    deployment = _deployment()
    code = io.BytesIO(factories.zip_folder({"main.py": factories.SCORE_PY}))
    code.name = "code.zip"
    data = _edit_data(browser, scoring_script="main.py")
    review = post("/endpoints/ep1/deployments/blue/edit/", {**data, "code_files": code, "action": "review"})
    html = review.content.decode()
    assert '<span class="diff-add">+  scoring_script: main.py</span>' in html
    ref = html.split('name="code_ref" value="', 1)[1].split('"', 1)[0]
    assert ref.startswith("upload:")
    applied = post("/endpoints/ep1/deployments/blue/edit/", {**data, "code_ref": ref, "action": "apply"})
    assert applied.status_code == 303
    row = Deployment.objects.get(pk=deployment.pk)
    assert row.scoring_script == "main.py" and row.code_path != deployment.code_path


def test_add_deployment_starts_from_the_model_the_endpoint_serves(browser: Client) -> None:
    other = factories.endpoint("aaa-other")
    factories.deployment(other, "blue", model={"path": f"upload:{factories.upload_file(b'x').uid}"})
    served = factories.model("zz-served")
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue", model=served.asset_id)
    assert Model.objects.order_by("name").first().name == "aaa-other-blue-model"  # sorts first
    html = browser.get("/endpoints/ep1/deployments/new/").content.decode()
    assert f'<option value="{served.asset_id}" selected>' in html


ENDPOINT_YML = "name: yaml-ep\nauth_mode: key\ndescription: from a file\n"
DEPLOYMENT_YML = """\
name: blue
endpoint_name: yaml-ep
model:
  path: ./model/weights.pkl
code_configuration:
  code: ./onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ./environment/conda.yaml
  image: python:3.11
environment_variables:
  MODE: yaml
instance_type: Standard_DS2_v2
instance_count: 1
"""
CONDA = "dependencies:\n  - python=3.11\n  - pip:\n      - numpy\n"


def _file(name: str, content: bytes | str) -> io.BytesIO:
    stream = io.BytesIO(content.encode() if isinstance(content, str) else content)
    stream.name = name
    return stream


def _yaml_files() -> list[io.BytesIO]:
    return [
        _file("weights.pkl", b"\x00weights"),
        _file("onlinescoring.zip", factories.zip_folder({"score.py": factories.SCORE_PY})),
        _file("conda.yaml", CONDA),
    ]


def test_create_endpoint_and_deployment_from_yaml_files(post: Any) -> None:
    data = {
        "endpoint_file": _file("endpoint.yml", ENDPOINT_YML),
        "deployment_file": _file("blue-deployment.yml", DEPLOYMENT_YML),
        "files": _yaml_files(),
        "all_traffic": "on",
    }
    answer = post("/endpoints/new/yaml/", data)
    assert answer.status_code == 303, answer.content.decode()[:3000]
    endpoint = Endpoint.objects.get(name="yaml-ep")
    assert endpoint.description == "from a file" and endpoint.traffic == {"blue": 100}
    blue = endpoint.deployments.get()
    assert blue.environment_variables == {"MODE": "yaml"} and blue.model.name == "yaml-ep-blue-model"
    assert blue.environment.conda_file["dependencies"][1] == {"pip": ["numpy"]}
    assert (blue.code_root / "score.py").is_file()


def test_create_from_yaml_names_the_missing_folder_and_creates_nothing(post: Any) -> None:
    data = {
        "endpoint_file": _file("endpoint.yml", ENDPOINT_YML),
        "deployment_file": _file("blue-deployment.yml", DEPLOYMENT_YML),
        "files": [_file("weights.pkl", b"w"), _file("conda.yaml", CONDA)],
    }
    answer = post("/endpoints/new/yaml/", data)
    assert answer.status_code == 400
    assert (
        "blue-deployment.yml: code_configuration.code: ./onlinescoring/ was not uploaded; "
        "add onlinescoring.zip or onlinescoring.tar.gz"
    ) in answer.content.decode()
    assert not Endpoint.objects.filter(name="yaml-ep").exists()
    bad = post("/endpoints/new/yaml/", {"endpoint_file": _file("endpoint.yml", "name: [yaml-ep\n")})
    assert bad.status_code == 400 and "endpoint.yml: is not valid YAML" in bad.content.decode()
    wrong = post("/endpoints/new/yaml/", {"endpoint_file": _file("endpoint.yml", "name: ep1\nauth_mode: aad\n")})
    assert "endpoint.yml: auth_mode: expected one of key, aml_token, aad_token, got &#x27;aad&#x27;" in (
        wrong.content.decode()
    )


def test_create_deployment_from_yaml_on_an_endpoint(post: Any) -> None:
    factories.endpoint("yaml-ep")
    data = {
        "deployment_file": _file("green.yml", DEPLOYMENT_YML.replace("name: blue", "name: green")),
        "files": _yaml_files(),
    }
    answer = post("/endpoints/yaml-ep/deployments/new/yaml/", data)
    assert answer.status_code == 303
    assert Endpoint.objects.get(name="yaml-ep").traffic == {"green": 0}


def test_autoscale_page_shows_rules_decisions_and_saves_through_the_service(browser: Client, post: Any) -> None:
    deployment = _deployment()
    empty = browser.get("/endpoints/ep1/deployments/blue/autoscale/").content.decode()
    assert "Autoscale is off for blue" in empty
    cost_services.autoscale_set(
        deployment=deployment,
        spec={
            "capacity": {"minimum": 1, "maximum": 4},
            "rules": [
                {
                    "metric": "CpuUtilizationPercentage",
                    "operator": "GreaterThan",
                    "threshold": 70,
                    "direction": "Increase",
                }
            ],
        },
    )
    event_record(
        deployment=deployment, reason="ScaleDecision", message="autoscale: CpuUtilizationPercentage 91 GreaterThan 70"
    )
    html = browser.get("/endpoints/ep1/deployments/blue/autoscale/").content.decode()
    assert "<td>CpuUtilizationPercentage</td><td>GreaterThan 70</td>" in html
    assert "autoscale: CpuUtilizationPercentage 91 GreaterThan 70" in html
    refused = post("/endpoints/ep1/deployments/blue/autoscale/", {"setting": "capacity: {minimum: 3, maximum: 2}"})
    assert refused.status_code == 400
    assert "capacity.maximum: must be at least the minimum 3, got 2" in refused.content.decode()
    saved = post("/endpoints/ep1/deployments/blue/autoscale/", {"setting": "capacity: {minimum: 2, maximum: 5}"})
    assert saved.status_code == 303
    deployment.autoscale.refresh_from_db()
    assert (deployment.autoscale.minimum, deployment.autoscale.maximum, deployment.autoscale.rules) == (2, 5, [])


def test_edit_keeps_an_inline_environment_from_yaml(browser: Client, post: Any) -> None:
    endpoint = factories.endpoint("ep1")
    deployment = factories.deployment(endpoint, "blue", environment={"image": "python:3.11"})
    assert deployment.environment.anonymous
    data = _edit_data(browser, environment_variables="MODE=inline")
    applied = post("/endpoints/ep1/deployments/blue/edit/", {**data, "action": "apply"})
    assert applied.status_code == 303, applied.content.decode()[:2000]
    row = Deployment.objects.get(pk=deployment.pk)
    assert row.environment == deployment.environment and row.environment_variables == {"MODE": "inline"}


def test_attributes_panel_is_its_own_fragment_for_live_refresh(browser: Client) -> None:
    factories.deployment(factories.endpoint("ep1"), "blue")
    fragment = browser.get("/endpoints/ep1/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="endpoint-attributes")
    html = fragment.content.decode()
    assert html.startswith('<div class="grid fit" id="endpoint-attributes"')
    assert '<span class="badge Creating">Creating</span>' in html and "deployment-cards" not in html


def test_edit_of_a_stale_form_is_refused_on_review_and_apply(post: Any, browser: Client) -> None:
    deployment = _deployment()
    data = _edit_data(browser, environment_variables="MODE=mine")
    services.deployment_scale(deployment=deployment, instance_count=2, reason="someone else")
    for action in ("review", "apply"):
        answer = post("/endpoints/ep1/deployments/blue/edit/", {**data, "action": action})
        assert answer.status_code == 400
        html = answer.content.decode()
        assert "deployment &#x27;blue&#x27; of &#x27;ep1&#x27; changed since version 1: it is at version 2" in html
    assert Deployment.objects.get(pk=deployment.pk).environment_variables == {"MODE": "fast"}


def test_a_reader_sees_the_pages_but_cannot_edit(db: None) -> None:
    deployment = _deployment()
    reader = Client()
    reader.force_login(factories.user("rita", role="reader"))
    for path in ("/endpoints/ep1/", "/endpoints/ep1/deployments/blue/spec/", "/endpoints/ep1/deployments/blue/edit/"):
        assert reader.get(path).status_code == 200, path
    writes = {
        "/endpoints/ep1/edit/": {"description": "x", "tags": "", "version": "1"},
        "/endpoints/ep1/deployments/blue/edit/": {"action": "apply"},
        "/endpoints/new/yaml/": {},
        "/endpoints/ep1/deployments/new/yaml/": {},
        "/endpoints/ep1/deployments/blue/autoscale/": {"setting": "capacity: {minimum: 1, maximum: 2}"},
    }
    for path, data in writes.items():
        answer = reader.post(path, data)
        assert answer.status_code == 403, path
        assert "Deployer" in answer.content.decode() or "Operator" in answer.content.decode(), path
    assert Deployment.objects.get(pk=deployment.pk).version == deployment.version


def test_details_name_who_changed_the_endpoint_last(post: Any, browser: Client) -> None:
    endpoint = factories.endpoint("ep1")
    post("/endpoints/ep1/edit/", {"description": "by alice", "tags": "", "version": endpoint.version})
    html = browser.get("/endpoints/ep1/").content.decode()
    assert "<dt>Updated by</dt><dd>alice</dd>" in html
