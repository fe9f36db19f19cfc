"""The product-grade details of the studio's pages: form fields, failures, error pages, the style guide,
conda files as typed, corrupt archives, costs as money."""

from __future__ import annotations

import gzip
import html as html_lib
import io
import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.costs.templatetags.costs import money
from apps.endpoints.models import Deployment, Environment, Instance
from tests import factories

pytestmark = pytest.mark.django_db

CONDA = """# the model's environment
name: sk-env
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip:
      - scikit-learn==1.5.0
"""


def test_conda_file_is_shown_as_typed_with_its_comments(browser: Client, post: Any) -> None:
    response = post("/environments/new/", {"name": "sk-env", "image": "", "pip_requirements": "", "conda_file": CONDA})
    assert response.status_code == 303
    assert Environment.objects.get(name="sk-env").conda_text == CONDA
    html = browser.get("/environments/sk-env/").content.decode()
    block = re.search(r'<pre class="code yaml"[^>]*>(.*?)</pre>', html, re.S)
    assert block, "no conda block"
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", block.group(1)))
    assert text.strip() == CONDA.strip()
    assert '<span class="c"># the model&#x27;s environment</span>' in block.group(1)
    assert '<span class="k">dependencies</span>:' in block.group(1)
    assert "{" not in text  # not JSON


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "model.zip",
            factories.zip_folder({"a.txt": "1" * 500})[:-30],
            "file: the .zip archive is corrupt or truncated",
        ),
        ("model.tar.gz", gzip.compress(b"x" * 2000)[:40], "file: the .tar.gz archive is corrupt or truncated"),
        ("weights.bin", b"plain", "is not a .zip, .tar, .tar.gz or .tgz archive"),
    ],
)
def test_a_corrupt_archive_is_called_corrupt(post: Any, name: str, content: bytes, message: str) -> None:
    upload = io.BytesIO(content)
    upload.name = name
    response = post("/models/new/", {"name": "m", "type": "custom_model", "files": upload, "unpack": "on"})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and "Traceback" not in html


def test_a_zip_whose_data_is_damaged_is_called_corrupt(post: Any) -> None:
    good = factories.zip_folder({"model/a.txt": "hello world " * 50})
    damaged = good.replace(b"hello world", b"HELLO WORLD", 1)  # stored data no longer matches its CRC
    upload = io.BytesIO(damaged)
    upload.name = "model.zip"
    response = post("/models/new/", {"name": "m", "type": "custom_model", "files": upload, "unpack": "on"})
    assert response.status_code == 400
    assert "file: the .zip archive is corrupt or truncated" in response.content.decode()


def test_form_fields_have_the_label_above_help_below_and_the_error_under_the_marked_field(
    browser: Client, post: Any
) -> None:
    html = post("/models/new/", {"name": "bad name!", "type": "custom_model", "files": io.BytesIO(b"w")}).content
    group = re.search(r'<div class="field has-error" id="id_name-group">(.*?)</div>', html.decode(), re.S)
    assert group, "the name field is not marked as in error"
    body = group.group(1)
    label, field, error = body.index("<label"), body.index("<input"), body.index('class="errorlist"')
    assert label < field < error
    assert 'aria-invalid="true"' in body
    assert "Name:" not in body  # no colon after the label


def test_failed_deployment_card_shows_reason_one_line_logs_link_and_details(browser: Client) -> None:
    endpoint = factories.endpoint("ep1")
    blue = factories.deployment(endpoint, "blue")
    trace = "\n".join(f'  File "/srv/instances/ep1/blue/blue-0/code/score.py", line {n}' for n in range(30))
    Deployment.objects.filter(pk=blue.pk).update(
        state="Failed", reason="UserScriptInitFailed", message=f"init() raised KeyError: 'model'\n{trace}"
    )
    Instance.objects.create(deployment=blue, name="blue-0", state="Ready")
    Instance.objects.create(deployment=blue, name="blue-1", state="CrashLoopBackOff")
    html = browser.get("/endpoints/ep1/").content.decode()
    card = html[html.index(f'id="failure-{blue.uid}"') :]
    assert '<p class="reason">UserScriptInitFailed</p>' in card
    assert '<p class="message" title="init() raised KeyError: &#x27;model&#x27;">' in card
    assert (
        f'href="/endpoints/ep1/logs/?deployment=blue&amp;instance=blue-1&amp;container=inference-server"'
        f' id="failure-{blue.uid}-logs">View logs</a>' in card
    )
    details = card[card.index("<details") : card.index("</details>")]
    assert "<summary>Show details</summary>" in details and "line 29" in details


def test_storage_failure_opens_the_storage_initializer_log(browser: Client) -> None:
    blue = factories.deployment(factories.endpoint("ep1"), "blue")
    Deployment.objects.filter(pk=blue.pk).update(state="Failed", reason="StorageInitializerFailed", message="copy")
    html = browser.get("/endpoints/ep1/").content.decode()
    assert "container=storage-initializer" in html


def test_error_pages_are_the_studios_own(browser: Client, settings: Any) -> None:
    settings.DEBUG = False
    response = browser.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert '<h1 id="error-title">Page not found</h1>' in html and "css/studio.css" in html
    assert "<code>/no-such-page/</code>" in html


def test_style_guide_lists_every_component(browser: Client) -> None:
    html = browser.get("/styleguide/").content.decode()
    for section in (
        "sg-type",
        "sg-colours",
        "sg-buttons",
        "sg-forms",
        "sg-cards",
        "sg-tables",
        "sg-badges",
        "sg-tabs",
        "sg-alerts",
        "sg-dialog",
        "sg-empty",
        "sg-errors",
    ):
        assert f'id="{section}"' in html, section
    assert 'class="field has-error"' in html and 'id="confirm-dialog"' in html and "data-toast" in html


def test_money_is_rounded_once_and_grouped() -> None:
    assert money(Decimal("1234.565"), "USD") == "1,234.57 USD"
    assert money(Decimal("0.0153645440866666666666666667"), "EUR") == "0.02 EUR"
    assert money(None) == ""


def test_global_costs_page_shows_month_to_date_projection_burn_rate_and_deployments(browser: Client) -> None:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue", instance_type="Standard_DS2_v2", instance_count=2)
    html = browser.get("/costs/").content.decode()
    for label in ("Month to date", "Projected month", "Burn rate", "Per day at current size"):
        assert f'<span class="label">{label}' in html
    assert 'id="total-burn-rate">0.2920 USD an hour<' in html
    deployments = html[html.index('id="costs-deployments"') :]
    assert "<td>ep1</td><td>blue</td>" in deployments and "7.01 USD" in deployments
