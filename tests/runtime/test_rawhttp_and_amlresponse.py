"""@rawhttp scripts get the request object (args, headers, JSON, forms, files); AMLResponse answers pass through."""

from __future__ import annotations

import uuid

import pytest

from tests.runtime.conftest import Server

SCRIPT = """
    import json
    from azureml.contrib.services.aml_request import AMLRequest, rawhttp
    from azureml.contrib.services.aml_response import AMLResponse

    def init():
        pass

    @rawhttp
    def run(request):
        if request.path != "/score":
            return AMLResponse("wrong path", 500)
        if request.method == "GET":
            return {"method": "GET", "args": request.args.to_dict(), "all_b": request.args.getlist("b")}
        kind = request.args.get("kind")
        if kind == "files":
            uploads = request.files.getlist("image")
            return {
                "field": request.form.get("caption"),
                "files": [{"name": f.filename, "type": f.content_type, "size": len(f.read())} for f in uploads],
                "other": request.files["doc"].read().decode(),
            }
        if kind == "json":
            return {"json": request.get_json(), "agent": request.headers.get("user-agent") is not None}
        if kind == "image":
            return AMLResponse(b"\\x89PNG-bytes", 201, {"Content-Type": "image/png", "X-Custom": "a, b"})
        if kind == "teapot":
            return AMLResponse({"short": "and stout"}, 418, json_str=True)
        if kind == "broken":
            return AMLResponse("backend down", 503)
        if kind == "stream":
            return AMLResponse((f"chunk{i};" for i in range(3)), 200, {"Content-Type": "text/plain"})
        if kind == "none":
            return AMLResponse(None, 200)
        return {"raw": request.get_data(as_text=True), "type": request.content_type}
"""


@pytest.fixture
def server(start_runtime) -> Server:
    return start_runtime(SCRIPT)


def _multipart(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_rawhttp_run_gets_query_arguments(server: Server) -> None:
    answer = server.get("/score?a=1&b=x&b=y")
    assert answer.json() == {"method": "GET", "args": {"a": "1", "b": "x"}, "all_b": ["x", "y"]}


def test_rawhttp_run_reads_multipart_files_and_fields(server: Server) -> None:
    boundary = uuid.uuid4().hex
    body = _multipart(
        boundary,
        [
            ("caption", None, None, b"a cat"),
            ("image", "cat.png", "image/png", b"\x89PNG\r\n\x00\x01binary"),
            ("image", "dog.jpg", "image/jpeg", b"\xff\xd8\xff" * 10),
            ("doc", "notes.txt", "text/plain", b"hello\r\n--not-a-boundary"),
        ],
    )
    answer = server.request(
        "POST", "/score?kind=files", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert answer.status == 200
    assert answer.json() == {
        "field": "a cat",
        "files": [
            {"name": "cat.png", "type": "image/png", "size": 14},
            {"name": "dog.jpg", "type": "image/jpeg", "size": 30},
        ],
        "other": "hello\r\n--not-a-boundary",
    }


def test_rawhttp_run_reads_json_and_headers(server: Server) -> None:
    answer = server.post_json("/score?kind=json", {"x": [1, 2]}, {"User-Agent": "tests"})
    assert answer.json() == {"json": {"x": [1, 2]}, "agent": True}


def test_rawhttp_run_reads_the_raw_body(server: Server) -> None:
    answer = server.request("POST", "/score", "plain words", {"Content-Type": "text/plain"})
    assert answer.json() == {"raw": "plain words", "type": "text/plain"}


def test_amlresponse_passes_body_status_and_headers_through(server: Server) -> None:
    answer = server.request("POST", "/score?kind=image", "")
    assert answer.status == 201
    assert answer.body == b"\x89PNG-bytes"
    assert answer.headers["content-type"] == "image/png"
    assert [v for k, v in answer.header_list if k == "X-Custom"] == ["a", "b"]
    assert answer.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" in answer.headers
    assert "run() output is HTTP Response" in server.wait_for_log("run() output is HTTP Response")


def test_amlresponse_with_json_str_sends_json(server: Server) -> None:
    answer = server.request("POST", "/score?kind=teapot", "")
    assert answer.status == 418
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"short": "and stout"}


def test_amlresponse_with_a_5xx_status_sets_run_function_failed(server: Server) -> None:
    answer = server.request("POST", "/score?kind=broken", "")
    assert answer.status == 503
    assert answer.text == "backend down"
    assert answer.headers["x-ms-run-function-failed"] == "True"


def test_amlresponse_with_a_generator_body_is_streamed(server: Server) -> None:
    answer = server.request("POST", "/score?kind=stream", "")
    assert answer.status == 200
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.text == "chunk0;chunk1;chunk2;"


def test_amlresponse_without_body_sends_an_empty_json_object(server: Server) -> None:
    answer = server.request("POST", "/score?kind=none", "")
    assert answer.text == "{}"
    assert answer.headers["content-type"] == "application/json"


def test_rawhttp_is_announced_in_the_log(server: Server) -> None:
    assert "run() is decorated with @rawhttp" in server.log()


def test_line_breaks_in_script_headers_cannot_inject_headers(start_runtime) -> None:
    server = start_runtime("""
        from azureml.contrib.services.aml_response import AMLResponse

        def init():
            pass

        def run(data):
            return AMLResponse("ok", 200, {"X-Note": "fine\\r\\nSet-Cookie: stolen=1"})
    """)
    answer = server.request("POST", "/score", "x")
    assert answer.status == 200
    assert "set-cookie" not in answer.headers
    assert answer.headers["x-note"] == "fine  Set-Cookie: stolen=1"
