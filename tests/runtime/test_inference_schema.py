"""run() decorated with inference-schema: parsed parameters in, Azure's 400/415 messages, a generated swagger."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import Server

SCRIPT = """
    import numpy as np
    from inference_schema.schema_decorators import input_schema, output_schema
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

    def init():
        pass

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    @input_schema("scale", StandardPythonParameterType(1.0))
    @output_schema(StandardPythonParameterType([3.0]))
    def run(data, scale=2.0, request_headers=None):
        assert isinstance(data, np.ndarray)
        return {"sums": (data.sum(axis=1) * scale).tolist(), "tenant": request_headers.get("X-Tenant")}
"""


@pytest.fixture
def server(start_runtime) -> Server:
    return start_runtime(SCRIPT)


def test_parameters_are_parsed_and_converted_by_the_decorators(server: Server) -> None:
    answer = server.post_json("/score", {"data": [[1, 2], [3, 4]], "scale": 10}, {"X-Tenant": "acme"})
    assert answer.status == 200
    assert answer.json() == {"sums": [30.0, 70.0], "tenant": "acme"}


def test_missing_optional_parameter_takes_its_default(server: Server) -> None:
    assert server.post_json("/score", {"data": [[1, 1]]}).json()["sums"] == [4.0]


def test_missing_required_parameter_returns_400(server: Server) -> None:
    answer = server.post_json("/score", {"scale": 1})
    assert answer.status == 400
    assert answer.json() == {"message": "A value is not provided for the 'data' parameter."}


def test_non_json_content_type_returns_415(server: Server) -> None:
    answer = server.request("POST", "/score", '{"data": [[1, 2]]}', {"Content-Type": "text/plain"})
    assert answer.status == 415
    assert answer.json() == {"message": "Expects Content-Type to be application/json"}


def test_empty_body_returns_400(server: Server) -> None:
    answer = server.request("POST", "/score", b"", {"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.json() == {"message": "POST body is empty. Expecting a JSON dictionary."}


def test_malformed_json_returns_400(server: Server) -> None:
    answer = server.request("POST", "/score", "{not json", {"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.json()["message"].startswith("POST body could not be decoded as JSON: ")


def test_json_that_is_not_an_object_returns_400(server: Server) -> None:
    answer = server.request("POST", "/score", "[1, 2]", {"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.json() == {"message": "POST body should be a JSON dictionary."}


def test_swagger_is_generated_from_the_decorators(server: Server) -> None:
    v2 = server.get("/swagger.json").json()
    assert v2["swagger"] == "2.0"
    service_input = v2["definitions"]["ServiceInput"]
    assert {"data", "scale"} <= set(service_input["properties"])
    assert service_input["example"]["data"] == [[1.0, 2.0]]
    assert v2["definitions"]["ServiceOutput"]["type"] == "array"
    v3 = server.get("/swagger.json?version=3").json()
    assert v3["openapi"] == "3.0.3"
    assert {"data", "scale"} <= set(v3["components"]["schemas"]["ServiceInput"]["properties"])
    assert server.get("/swagger.json?version=3.1").json()["openapi"] == "3.1.0"


def test_decorated_run_is_announced_in_the_log(server: Server) -> None:
    assert (
        "run() is decorated with @input_schema. Server will invoke it with the following arguments: data, scale."
        in server.log()
    )
