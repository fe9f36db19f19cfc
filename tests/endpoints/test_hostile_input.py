"""Hostile input is refused cheaply, with the API's JSON error shape and a message naming what is wrong."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from typing import Any

import pytest
from django.test import Client

from apps.endpoints.models import Environment, Upload
from tests import factories

pytestmark = pytest.mark.django_db

ALIAS_BOMB = "\n".join(
    ['dependencies: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"l{i}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
)


def refused(response: Any, status: int = 400) -> str:
    """The error message of a refusal in the API's JSON shape."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    return str(response.json()["error"]["message"])


def register(api: Any, **spec: Any) -> Any:
    return api.post("/api/v1/environments", {"name": "env", "image": "python:3.11", **spec}, format="json")


@pytest.mark.parametrize(
    ("requirements", "named"),
    [
        ("numpy==1.26.4\n-r /srv/studio/secret_key", "line 2: '-r' is a pip option"),
        ("-c constraints.txt", "line 1: '-c' is a pip option"),
        ("-e .", "line 1: '-e' is a pip option"),
        ("pandas\n\n--index-url https://evil.example/simple", "line 3: '--index-url' is a pip option"),
        ("--extra-index-url=https://evil.example/simple", "line 1: '--extra-index-url' is a pip option"),
        ("--find-links /tmp/wheels", "line 1: '--find-links' is a pip option"),
        ("./mypackage", "line 1: './mypackage' is a local path"),
        ("/root/.studio/secret_key", "line 1: '/root/.studio/secret_key' is a local path"),
        ("file:///etc/passwd", "line 1: 'file:///etc/passwd' is a local path"),
        ("pkg @ file:///etc/passwd", "only https:// URLs are accepted"),
        ("https://example.com/x.whl", "is a bare URL; write it as `name @ https://...`"),
        ("numpy >> 2", "is not a package specification"),
    ],
)
def test_pip_requirements_accept_only_package_specifications(api: Any, requirements: str, named: str) -> None:
    message = refused(register(api, pip_requirements=requirements))
    assert message.startswith("pip_requirements line"), message
    assert named in message
    assert not Environment.objects.exists()


def test_requirement_specifiers_with_extras_markers_and_urls_are_accepted(api: Any) -> None:
    text = (
        "numpy==1.26.4\n# a comment\nrequests[socks]>=2.31 ; python_version >= '3.8'\n"
        "mypkg @ https://files.example.org/mypkg-1.0-py3-none-any.whl\nscikit-learn~=1.5"
    )
    response = register(api, pip_requirements=text)
    assert response.status_code == 201, response.content


def test_conda_pip_section_is_checked_naming_the_item(api: Any) -> None:
    conda = "name: x\ndependencies:\n  - python=3.11\n  - pip:\n    - numpy\n    - -r /etc/shadow\n"
    message = refused(register(api, conda_file=conda))
    assert message.startswith("conda_file.dependencies[1].pip item 2: '-r' is a pip option"), message


def test_yaml_alias_bomb_is_refused_naming_the_limit(api: Any) -> None:
    assert len(ALIAS_BOMB) < 700
    message = refused(register(api, conda_file=ALIAS_BOMB))
    assert "the limit on a YAML document's expanded size" in message
    assert message.startswith("conda_file: expands to more than 100000 values")
    assert not Environment.objects.exists()


def test_yaml_with_many_aliases_is_refused(api: Any) -> None:
    conda = "base: &p numpy\ndependencies:\n" + "".join("  - *p\n" for _ in range(150))
    assert "more than 100 aliases" in refused(register(api, conda_file=conda))


def test_deeply_nested_yaml_is_refused(api: Any) -> None:
    for deep in ("dependencies:\n  " + "- " * 20_000 + "x\n", "dependencies: " + "[" * 20_000 + "]" * 20_000 + "\n"):
        message = refused(register(api, conda_file=deep))
        assert message == "conda_file: is nested more than 64 levels deep (the limit on YAML nesting)"


def test_deeply_nested_json_body_is_a_json_400(api: Any) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = api.post("/api/v1/environments", body, content_type="application/json")
    assert "nested more than 64 levels deep" in refused(response)
    shallow_but_over = json.dumps({"name": "env", "tags": {"a": 1}, "x": json.loads("[" * 70 + "]" * 70)})
    response = api.post("/api/v1/environments", shallow_but_over, content_type="application/json")
    assert "nested more than 64 levels deep" in refused(response)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"description": "d" * 9_000_00}, "description: is 900000 characters long, at most 5000"),
        ({"tags": {f"t{i}": "x" for i in range(200)}}, "tags: has 200 entries, at most 50"),
        ({"tags": {"team": "x" * 1000}}, "tags.team: is 1000 characters long, at most 256"),
    ],
)
def test_free_form_fields_are_bounded(api: Any, spec: dict[str, Any], named: str) -> None:
    assert named in refused(register(api, **spec))


def test_deployment_environment_variables_are_bounded(api: Any) -> None:
    api.post("/api/v1/online-endpoints", {"name": "ep1"}, format="json")
    many = {f"VAR_{i}": "1" for i in range(300)}
    response = api.post(
        "/api/v1/online-endpoints/ep1/deployments",
        factories.deployment_spec(environment_variables=many),
        format="json",
    )
    assert "environment_variables: has 300 entries, at most 200" in refused(response)


def test_oversize_body_is_a_json_400_naming_the_limit(api: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = json.dumps({"name": "env", "description": "x" * 100_000})
    message = refused(api.post("/api/v1/environments", body, content_type="application/json"))
    assert message.startswith("the request body is larger than 65536 bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)")
    assert not Environment.objects.exists()


def test_unknown_api_path_is_a_json_404(api: Any) -> None:
    assert refused(api.get("/api/v1/no-such-thing"), 404) == "no API resource at /api/v1/no-such-thing"


def test_csrf_failure_in_the_api_is_a_json_403(db: None) -> None:
    factories.user("carol")
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="carol", password="correct-horse-battery")
    response = browser.post("/api/v1/environments", {"name": "env"}, content_type="application/json")
    message = refused(response, 403)
    assert message.startswith("CSRF Failed")
    assert response.json()["error"]["code"] == "CSRFFailed"


def test_unexpected_error_in_the_api_is_a_json_500(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.endpoints import selectors

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "environments_list", broken)
    api.raise_request_exception = False
    message = refused(api.get("/api/v1/environments"), 500)
    assert "a bug" not in message
    assert message == "the studio failed to handle this request; its log has the details"


def _zip(entries: list[tuple[str, str | None]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries:
            if text is None:
                archive.writestr(zipfile.ZipInfo(name if name.endswith("/") else name + "/"), "")
            else:
                archive.writestr(zipfile.ZipInfo(name), text)
    return buffer.getvalue()


def _tar(entries: list[tuple[str, str | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in entries:
            info = tarfile.TarInfo(name)
            if text is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                data = text.encode()
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("pack", [_zip, _tar])
@pytest.mark.parametrize(
    ("entries", "named"),
    [
        ([("score.py", "x"), (".", "x")], "entry '.' has no name"),
        ([("lib", "x"), ("lib/util.py", "y")], "entry 'lib/util.py' is inside 'lib', which an earlier entry made"),
        ([("score.py", "x"), ("score.py", "y")], "entry 'score.py' names a path that an earlier entry already holds"),
        ([("model", "x"), ("model", None)], "names a path that an earlier entry already holds"),
    ],
)
def test_archive_edge_cases_are_refused_naming_the_entry(
    api: Any, pack: Any, entries: list[tuple[str, str | None]], named: str
) -> None:
    archive = pack(entries)
    suffix = "zip" if pack is _zip else "tar.gz"
    response = api.post(
        "/api/v1/uploads",
        {"file": io.BytesIO(archive), "kind": "folder", "name": f"src.{suffix}"},
        format="multipart",
    )
    message = refused(response)
    assert named in message, message
    assert message.startswith("file: the archive entry")
    assert not Upload.objects.exists()


def test_tar_entry_with_an_empty_name_is_refused(api: Any) -> None:
    archive = _tar([("./", None), ("", "x")])  # zipfile cannot even write such an entry
    response = api.post(
        "/api/v1/uploads", {"file": io.BytesIO(archive), "kind": "folder", "name": "src.tar.gz"}, format="multipart"
    )
    assert "file: the archive entry '' has no name" in refused(response)


def test_tar_of_a_folder_with_its_root_entry_is_accepted(api: Any) -> None:
    archive = _tar([(".", None), ("./score.py", "x"), ("./lib", None), ("./lib/util.py", "y")])
    response = api.post(
        "/api/v1/uploads", {"file": io.BytesIO(archive), "kind": "folder", "name": "src.tar.gz"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["file_count"] == 2
