"""How long each hostile request takes to be refused, and whether the database grows.

Runs the studio in-process (Django's test client, a throwaway STUDIO_HOME with SQLite, no server) and sends
every probe of issue 18 through the REST API as a signed-in CLI would: pip option lines, an alias bomb,
deeply nested YAML and JSON, archive edge cases, an oversize body, 200 000 tags. Prints per probe the status,
the median time over the rounds and the start of the message, then the database size before and after.

    .venv/bin/python bench/hostile_input.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ALIAS_BOMB = "\n".join(
    ['dependencies: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"l{i}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
)


def _zip(entries: list[tuple[str, str]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries:
            archive.writestr(zipfile.ZipInfo(name), text)
    return buffer.getvalue()


def _tar(entries: list[tuple[str, str]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in entries:
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="studio-bench-hostile-"))
    os.environ.update(STUDIO_HOME=str(home), DJANGO_SETTINGS_MODULE="studio.settings")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench", password="bench-password-long")
    token = Token.objects.create(user=user).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    database = Path(settings.DATABASES["default"]["NAME"])

    def environment(**spec: Any) -> Callable[[], Any]:
        body = json.dumps({"name": "env", "image": "python:3.11", **spec})
        return lambda: client.post("/api/v1/environments", body, content_type="application/json")

    def upload(data: bytes, name: str) -> Callable[[], Any]:
        def send() -> Any:
            return client.post("/api/v1/uploads", {"file": io.BytesIO(data), "kind": "folder", "name": name})

        return send

    deep_json = "[" * 100_000 + "]" * 100_000
    probes: list[tuple[str, Callable[[], Any]]] = [
        ("pip -r <secret_key>", environment(pip_requirements=f"numpy\n-r {home / 'secret_key'}")),
        ("pip -c", environment(pip_requirements="-c constraints.txt")),
        ("pip -e .", environment(pip_requirements="-e .")),
        ("pip --index-url", environment(pip_requirements="--index-url https://evil.example/simple")),
        ("pip --extra-index-url", environment(pip_requirements="--extra-index-url https://evil.example/simple")),
        ("pip --find-links", environment(pip_requirements="--find-links /tmp")),
        ("pip local path", environment(pip_requirements="/etc/passwd")),
        ("conda pip -r", environment(conda_file="dependencies:\n  - pip:\n    - -r /etc/shadow\n")),
        (f"YAML alias bomb ({len(ALIAS_BOMB)} bytes)", environment(conda_file=ALIAS_BOMB)),
        ("YAML nested 20000 (block)", environment(conda_file="dependencies:\n  " + "- " * 20_000 + "x\n")),
        ("YAML nested 20000 (flow)", environment(conda_file="d: " + "[" * 20_000 + "]" * 20_000 + "\n")),
        (
            "JSON nested 100000",
            lambda: client.post("/api/v1/environments", deep_json, content_type="application/json"),
        ),
        ("200000 tags", environment(tags={f"t{i}": "x" for i in range(200_000)})),
        ("description 9 MiB", environment(description="d" * (9 * 1024 * 1024))),
        ("body 11 MiB", environment(description="d" * (11 * 1024 * 1024))),
        ("zip entry '.'", upload(_zip([("score.py", "x"), (".", "x")]), "src.zip")),
        ("tar entry ''", upload(_tar([("", "x")]), "src.tar.gz")),
        ("zip file then folder", upload(_zip([("lib", "x"), ("lib/util.py", "y")]), "src.zip")),
        ("zip duplicate entry", upload(_zip([("a.py", "x"), ("a.py", "y")]), "src.zip")),
        ("unknown /api/ path", lambda: client.get("/api/v1/no-such-thing")),
    ]

    def database_bytes() -> int:
        return sum(path.stat().st_size for path in database.parent.glob(database.name + "*"))

    size_before = database_bytes()
    print(f"{'probe':<32} {'status':>6} {'median ms':>10}  message")
    for name, send in probes:
        times = []
        response = None
        for _ in range(args.rounds):
            began = time.perf_counter()
            response = send()
            times.append((time.perf_counter() - began) * 1000)
        assert response is not None
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"(not the JSON error shape: {response.content[:60]!r})"
        print(f"{name:<32} {response.status_code:>6} {statistics.median(times):>10.2f}  {message[:90]}")
    size_after = database_bytes()
    print(f"database (with -wal): {size_before} bytes before, {size_after} bytes after ({size_after - size_before:+d})")


if __name__ == "__main__":
    main()
