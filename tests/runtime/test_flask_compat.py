"""AMLRequest and AMLResponse behave as Flask's (Werkzeug's) Request and Response do for a scoring script.

The expected values are Werkzeug's documented behaviour (werkzeug.wrappers.Request / Response,
werkzeug.datastructures.MultiDict / Headers, werkzeug.http.dump_cookie), written out here; the runtime itself
does not depend on Flask.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from runtime.datastructures import BadRequest, MultiDict, UnsupportedMediaType
from runtime.request import AMLRequest
from runtime.response import AMLResponse
from tests.runtime.conftest import Server


def make_request(
    method: str = "POST",
    path: str = "/score",
    query: bytes = b"",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> AMLRequest:
    lower = {"host": "127.0.0.1:5001", **{k.lower(): v for k, v in (headers or {}).items()}}
    return AMLRequest(method, path, query, lower, body, "10.0.0.7")


# --- Response: status


def test_response_status_and_status_code_follow_each_other() -> None:
    response = AMLResponse("hi", 200)
    assert (response.status, response.status_code) == ("200 OK", 200)
    response.status_code = 404
    assert response.status == "404 NOT FOUND"
    response.status = "418"
    assert (response.status, response.status_code) == ("418 I'M A TEAPOT", 418)
    response.status = "299 Custom Reason"
    assert (response.status, response.status_code) == ("299 Custom Reason", 299)
    response.status = 599
    assert response.status == "599 UNKNOWN"


# --- Response: content type


def test_default_content_type_is_html_with_charset() -> None:
    response = AMLResponse("<p>hi</p>", 200)
    assert response.content_type == "text/html; charset=utf-8"
    assert response.mimetype == "text/html"
    assert response.mimetype_params == {"charset": "utf-8"}


def test_setting_mimetype_writes_content_type_and_text_types_get_a_charset() -> None:
    response = AMLResponse(b"\xff\xd8", 200)
    response.mimetype = "image/jpg"
    assert response.content_type == "image/jpg"
    assert response.headers["Content-Type"] == "image/jpg"
    assert response.headers.getlist("content-type") == ["image/jpg"]
    response.mimetype = "text/plain"
    assert response.content_type == "text/plain; charset=utf-8"
    response.mimetype = "application/xml"
    assert response.content_type == "application/xml; charset=utf-8"
    response.mimetype = "application/json"
    assert response.content_type == "application/json"


def test_setting_content_type_is_taken_as_is() -> None:
    response = AMLResponse("x", 200)
    response.content_type = "text/csv; header=present"
    assert response.mimetype == "text/csv"
    assert response.mimetype_params == {"header": "present"}


def test_changing_mimetype_params_rewrites_the_header() -> None:
    response = AMLResponse("x", 200)
    response.mimetype_params["charset"] = "latin-1"
    assert response.content_type == "text/html; charset=latin-1"


# --- Response: body


def test_data_set_data_get_data_and_content_length() -> None:
    response = AMLResponse("héllo", 200)
    assert response.data == "héllo".encode()
    assert response.get_data(as_text=True) == "héllo"
    assert response.content_length == 6
    assert response.headers["Content-Length"] == "6"
    response.data = b"abc"
    assert (response.get_data(), response.content_length) == (b"abc", 3)
    response.set_data("zz")
    assert response.data == b"zz" and response.headers["Content-Length"] == "2"
    assert response.response == [b"zz"]
    assert list(response.iter_encoded()) == [b"zz"]
    assert repr(response) == "<AMLResponse 2 bytes [200 OK]>"


def test_a_generator_body_is_streamed_until_it_is_read() -> None:
    response = AMLResponse((f"c{i};" for i in range(3)), 200)
    assert response.is_streamed and not response.is_sequence
    assert response.content_length is None
    assert repr(response) == "<AMLResponse streamed [200 OK]>"
    assert response.get_data() == b"c0;c1;c2;"
    assert response.content_length == 9 and not response.is_streamed


def test_json_str_response_is_json() -> None:
    response = AMLResponse({"a": [1, 2]}, 201, json_str=True)
    assert response.is_json and response.mimetype == "application/json"
    assert response.json == {"a": [1, 2]}
    assert response.get_json() == {"a": [1, 2]}
    assert AMLResponse("not json", 200).json is None  # werkzeug's Response.json: None for other types


# --- Response: headers


def test_headers_are_case_insensitive_ordered_and_repeatable() -> None:
    response = AMLResponse("x", 200, {"X-Custom": "a, b"})
    assert response.headers.getlist("x-custom") == ["a", "b"]
    response.headers["X-Single"] = "1"
    response.headers["x-single"] = "2"
    assert response.headers.getlist("X-Single") == ["2"]
    response.headers.add("X-Multi", "1")
    response.headers.add("X-Multi", "2")
    assert response.headers.getlist("x-multi") == ["1", "2"]
    assert response.headers.get("X-Multi", type=int) == 1
    assert response.headers.get("missing", "dflt") == "dflt"
    response.headers.add("Content-Disposition", "attachment", filename="out image.jpg")
    assert response.headers["content-disposition"] == 'attachment; filename="out image.jpg"'
    response.headers.set("X-Multi", "3")
    assert response.headers.getlist("X-Multi") == ["3"]
    response.headers.extend({"X-Ext": "e"})
    response.headers.update({"X-Ext": "u"})
    assert response.headers.getlist("X-Ext") == ["u"]
    assert response.headers.setdefault("X-Default", "d") == "d"
    assert response.headers.pop("X-Default") == "d"
    del response.headers["X-Ext"]
    assert "X-Ext" not in response.headers and "x-multi" in response.headers
    names = [name for name, _ in response.headers]
    assert names[:2] == ["Content-Type", "x-ms-run-function-failed"]
    assert ("X-Multi", "3") in response.headers.to_wsgi_list()
    with pytest.raises(KeyError):
        response.headers["missing"]


def test_header_properties_and_cookies() -> None:
    response = AMLResponse("x", 302)
    response.location = "/elsewhere"
    response.content_encoding = "gzip"
    assert response.headers["Location"] == "/elsewhere" and response.content_encoding == "gzip"
    response.set_cookie("session", "abc", httponly=True, samesite="lax")
    response.set_cookie("spaced", "a b")
    response.delete_cookie("old")
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies[0] == "session=abc; HttpOnly; Path=/; SameSite=Lax"
    assert cookies[1] == 'spaced="a b"; Path=/'
    assert cookies[2] == "old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"


def test_run_function_failed_and_azure_arguments() -> None:
    response = AMLResponse("boom", 500, run_function_failed=True)
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert AMLResponse(None, 200).data == b"{}"


# --- Request


def test_request_url_parts_as_flask_shows_them() -> None:
    request = make_request("GET", "/score", b"a=1&b=x&b=y")
    assert request.method == "GET"
    assert request.path == "/score"
    assert request.full_path == "/score?a=1&b=x&b=y"
    assert request.query_string == b"a=1&b=x&b=y"
    assert request.url == "http://127.0.0.1:5001/score?a=1&b=x&b=y"
    assert request.base_url == "http://127.0.0.1:5001/score"
    assert request.host == "127.0.0.1:5001"
    assert request.host_url == request.url_root == request.root_url == "http://127.0.0.1:5001/"
    assert request.script_root == ""
    assert request.scheme == "http" and not request.is_secure
    assert request.remote_addr == "10.0.0.7"
    assert request.access_route == ["10.0.0.7"]
    assert make_request("GET", "/score").full_path == "/score?"  # Flask keeps the '?'


def test_request_args_are_an_immutable_multidict() -> None:
    args = make_request("GET", query=b"a=1&b=x&b=y&n=oops").args
    assert args["a"] == "1" and args.get("a", type=int) == 1
    assert args.get("n", -1, type=int) == -1
    assert args.getlist("b") == ["x", "y"]
    assert args.to_dict() == {"a": "1", "b": "x", "n": "oops"}
    assert args.to_dict(flat=False) == {"a": ["1"], "b": ["x", "y"], "n": ["oops"]}
    assert list(args) == ["a", "b", "n"] and len(args) == 3 and "b" in args
    assert list(args.items(multi=True)) == [("a", "1"), ("b", "x"), ("b", "y"), ("n", "oops")]
    with pytest.raises(KeyError):
        args["missing"]
    with pytest.raises(TypeError):
        args["a"] = "2"  # type: ignore[index]
    copy = args.copy()
    copy["a"] = "2"
    assert copy["a"] == "2" and args["a"] == "1"


def test_request_headers_are_case_insensitive_capitalised_and_read_only() -> None:
    request = make_request(headers={"Content-Type": "application/json; charset=utf-8", "X-Request-Id": "r1"})
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers.get("X-REQUEST-ID") == "r1"
    assert dict(request.headers)["X-Request-Id"] == "r1"
    assert ("Host", "127.0.0.1:5001") in list(request.headers)
    with pytest.raises(TypeError):
        request.headers["X-New"] = "1"


def test_request_content_type_mimetype_length_and_json() -> None:
    body = json.dumps({"data": [1, 2]}).encode()
    request = make_request(
        headers={"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))}, body=body
    )
    assert request.content_type == "application/json; charset=utf-8"
    assert request.mimetype == "application/json"
    assert request.mimetype_params == {"charset": "utf-8"}
    assert request.content_length == len(body)
    assert request.is_json
    assert request.json == request.get_json() == {"data": [1, 2]}
    assert request.data == body and request.get_data(as_text=True) == body.decode()
    assert request.stream.read() == body
    assert make_request(headers={"Content-Type": "application/vnd.api+json"}, body=b"{}").is_json


def test_get_json_on_other_types_raises_415_and_bad_json_raises_400() -> None:
    text = make_request(headers={"Content-Type": "text/plain"}, body=b"{}")
    with pytest.raises(UnsupportedMediaType):
        text.get_json()
    assert text.get_json(silent=True) is None
    assert text.get_json(force=True) == {}
    bad = make_request(headers={"Content-Type": "application/json"}, body=b"{nope")
    with pytest.raises(BadRequest):
        bad.get_json()
    assert bad.get_json(silent=True) is None


def test_request_form_files_values_and_cookies() -> None:
    boundary = "XyZ"
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=caption\r\n\r\na cat\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="cat.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8data\r\n--XyZ--\r\n"
    )
    request = make_request(
        query=b"q=1",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": "a=1; b=two"},
        body=body,
    )
    assert request.form["caption"] == "a cat"
    upload = request.files["image"]
    assert (upload.filename, upload.name, upload.mimetype) == ("cat.jpg", "image", "image/jpeg")
    target = io.BytesIO()
    upload.save(target)
    assert target.getvalue() == b"\xff\xd8data"
    assert request.values.to_dict() == {"q": "1", "caption": "a cat"}
    assert request.cookies.to_dict() == {"a": "1", "b": "two"}
    urlencoded = make_request(headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"x=1&x=2")
    assert urlencoded.form.getlist("x") == ["1", "2"]
    get = make_request("GET", query=b"q=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert get.values.to_dict() == {"q": "1"}  # Flask 2+: only args for GET


def test_request_environ_user_agent_and_repr() -> None:
    request = make_request(
        "POST", query=b"a=1", headers={"User-Agent": "curl/8", "Content-Type": "text/plain", "X-A": "b"}, body=b"hi"
    )
    environ = request.environ
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/score" and environ["QUERY_STRING"] == "a=1"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["HTTP_X_A"] == "b" and environ["HTTP_USER_AGENT"] == "curl/8"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "5001")
    assert environ["REMOTE_ADDR"] == "10.0.0.7" and environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input"].read() == b"hi"
    assert str(request.user_agent) == request.user_agent.string == "curl/8"
    assert repr(request) == "<AMLRequest 'http://127.0.0.1:5001/score?a=1' [POST]>"


def test_multidict_keeps_werkzeug_semantics() -> None:
    data = MultiDict([("a", "1"), ("a", "2")])
    data.add("b", "3")
    data["c"] = "4"
    data.update({"a": "5"})
    assert data.getlist("a") == ["1", "2", "5"]
    assert data.pop("c") == "4" and "c" not in data
    assert data.to_dict(flat=False) == {"a": ["1", "2", "5"], "b": ["3"]}


# --- through a real runtime process


def tiny_png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    """A valid PNG made by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


IMAGE_SCRIPT = """
    from azureml.contrib.services.aml_request import AMLRequest, rawhttp
    from azureml.contrib.services.aml_response import AMLResponse

    def init():
        pass

    @rawhttp
    def run(request):
        image = request.files["image"].read() if request.files else request.get_data()
        resp = AMLResponse(image, 200)
        resp.mimetype = "image/jpg"
        resp.headers["X-Image-Bytes"] = str(resp.content_length)
        resp.status = "201"
        resp.set_cookie("seen", "yes")
        return resp
"""


def test_a_script_that_sets_mimetype_returns_an_image_through_the_runtime(start_runtime, tmp_path: Path) -> None:
    server: Server = start_runtime(IMAGE_SCRIPT)
    image = tiny_png()
    answer = server.request("POST", "/score", image, {"Content-Type": "application/octet-stream"})
    assert answer.status == 201, answer.body
    assert answer.headers["content-type"] == "image/jpg"
    assert answer.body == image
    assert answer.headers["x-image-bytes"] == str(len(image))
    assert answer.headers["content-length"] == str(len(image))
    assert [v for k, v in answer.header_list if k.lower() == "content-length"] == [str(len(image))]
    assert answer.headers["set-cookie"] == "seen=yes; Path=/"
