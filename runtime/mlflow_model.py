"""MLflow no-code serving: an `mlflow_model` without a scoring script, answered through `mlflow.pyfunc`.

Requests look like Azure's no-code deployments: `{"input_data": ...}` in pandas split orient
(`{"columns": [...], "index": [...], "data": [[...]]}`), a list of rows, or a dict of lists, plus an
optional `"params"` dict passed to predict().
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from runtime.response import AMLResponse
from runtime.scoring import ScriptError, UserScript

logger = logging.getLogger("azmlinfsrv.mlflow")


class InputDataError(ValueError):
    """The body is not a valid `{"input_data": ...}` payload; the message says why."""


def find_model(model_dir: Path) -> Path | None:
    """The folder holding the MLmodel file: the model dir itself, MLFLOW_MODEL_FOLDER, or up to two levels down."""
    folder = os.environ.get("MLFLOW_MODEL_FOLDER")
    if folder and (model_dir / folder / "MLmodel").is_file():
        return model_dir / folder
    if (model_dir / "MLmodel").is_file():
        return model_dir
    if not model_dir.is_dir():
        return None
    for pattern in ("*/MLmodel", "*/*/MLmodel"):
        found = sorted(model_dir.glob(pattern))
        if found:
            return found[0].parent
    return None


def script_for(model_path: Path) -> UserScript:
    """A UserScript whose init() loads the model with mlflow.pyfunc and whose run() parses input_data."""
    serving = MLflowServing(model_path)
    return UserScript(serving.init, serving.run, f"mlflow model at {model_path}")


class MLflowServing:
    """init()/run() for one MLflow model; `model` can be given directly (a stand-in in tests)."""

    def __init__(self, model_path: Path | None = None, model: Any = None) -> None:
        self.model_path = model_path
        self.model = model

    def init(self) -> None:
        """Load the model through mlflow.pyfunc."""
        try:
            import mlflow.pyfunc
        except ImportError as ex:
            raise ScriptError(
                "The model is an MLflow model served without a scoring script, but mlflow is not "
                "installed in this environment: add mlflow (or mlflow-skinny) to its "
                "requirements."
            ) from ex
        logger.info(f"Loading MLflow model from {self.model_path}")
        self.model = mlflow.pyfunc.load_model(str(self.model_path))

    def run(self, raw_data: str) -> Any:
        """Predict on `{"input_data": ...}`; a malformed payload answers 400 with the reason."""
        try:
            payload = json.loads(raw_data)
        except ValueError as ex:
            return _bad_request(f"The body could not be decoded as JSON: {ex}")
        try:
            data = parse_input_data(payload, columns=_input_columns(self.model), tensor=_is_tensor(self.model))
        except InputDataError as ex:
            return _bad_request(str(ex))
        params = payload.get("params") if isinstance(payload, dict) else None
        if params:
            predictions = self.model.predict(data, params=params)
        else:
            predictions = self.model.predict(data)
        return to_jsonable(predictions)


def _bad_request(message: str) -> AMLResponse:
    return AMLResponse({"message": message}, 400, json_str=True)


def parse_input_data(payload: Any, *, columns: list[str] | None = None, tensor: bool = False) -> Any:
    """What predict() receives for a request body: a DataFrame for tabular models, arrays for tensor models."""
    if not isinstance(payload, dict) or "input_data" not in payload:
        raise InputDataError('The body must be a JSON object with an "input_data" key.')
    data = payload["input_data"]
    if isinstance(data, dict):
        if "data" in data and ("columns" in data or "index" in data):
            rows = data["data"]
            if tensor:
                return _numpy().asarray(rows)
            return _pandas().DataFrame(rows, columns=data.get("columns") or None, index=data.get("index") or None)
        if tensor:
            return {key: _numpy().asarray(value) for key, value in data.items()}
        if all(not isinstance(v, list | tuple) for v in data.values()):
            return _pandas().DataFrame(data, index=[0])  # one row given as a dict of scalars
        return _pandas().DataFrame(data)
    if isinstance(data, list):
        if tensor or (columns is None and not any(isinstance(row, dict) for row in data)):
            return _numpy().asarray(data)
        if data and all(isinstance(row, dict) for row in data):
            return _pandas().DataFrame(data)  # records
        return _pandas().DataFrame(data, columns=columns if columns and _width(data) == len(columns) else None)
    raise InputDataError('"input_data" must be an object (split orient or a dict of lists) or a list of rows.')


def _width(rows: list[Any]) -> int | None:
    widths = {len(row) if isinstance(row, list | tuple) else 1 for row in rows}
    return widths.pop() if len(widths) == 1 else None


def to_jsonable(predictions: Any) -> Any:
    """Predictions as JSON-ready values: DataFrames as records, arrays and Series as lists."""
    if hasattr(predictions, "to_dict") and hasattr(predictions, "columns"):
        return predictions.to_dict(orient="records")
    if hasattr(predictions, "tolist"):
        return predictions.tolist()
    if isinstance(predictions, dict):
        return {key: to_jsonable(value) for key, value in predictions.items()}
    return predictions


def _input_columns(model: Any) -> list[str] | None:
    schema = _input_schema(model)
    if schema is None or _is_tensor(model):
        return None
    names = schema.input_names() if hasattr(schema, "input_names") else None
    return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None


def _is_tensor(model: Any) -> bool:
    schema = _input_schema(model)
    return bool(schema is not None and getattr(schema, "is_tensor_spec", lambda: False)())


def _input_schema(model: Any) -> Any:
    metadata = getattr(model, "metadata", None)
    getter = getattr(metadata, "get_input_schema", None)
    return getter() if getter else None


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as ex:
        raise InputDataError("pandas is needed to read tabular input_data and is not installed") from ex
    return pandas


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as ex:
        raise InputDataError("numpy is needed to read tensor input_data and is not installed") from ex
    return numpy
