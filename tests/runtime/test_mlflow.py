"""MLflow no-code serving: how `{"input_data": ...}` becomes what predict() receives, and a real model end to end.

numpy, pandas and mlflow-skinny are test dependencies: a missing one is a failure, never a skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.sklearn as mlflow_sklearn
import numpy as np
import pandas as pd
import pytest

from runtime.mlflow_model import InputDataError, MLflowServing, find_model, parse_input_data, to_jsonable
from runtime.response import AMLResponse


class StandInModel:
    """Records what predict() got, like a pyfunc model without a signature."""

    metadata = None

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        self.seen.append((data, params))
        return np.asarray(data).sum(axis=-1) if not hasattr(data, "columns") else data.sum(axis=1).to_numpy()


def test_list_of_rows_becomes_an_array() -> None:
    parsed = parse_input_data({"input_data": [[1, 2], [3, 4]]})
    assert isinstance(parsed, np.ndarray)
    assert parsed.tolist() == [[1, 2], [3, 4]]


def test_payload_without_input_data_is_refused() -> None:
    with pytest.raises(InputDataError, match='"input_data"'):
        parse_input_data({"data": [[1]]})


def test_split_orient_becomes_a_dataframe_with_columns_and_index() -> None:
    parsed = parse_input_data({"input_data": {"columns": ["a", "b"], "index": [7, 8], "data": [[1, 2], [3, 4]]}})
    assert isinstance(parsed, pd.DataFrame)
    assert list(parsed.columns) == ["a", "b"]
    assert list(parsed.index) == [7, 8]
    assert parsed["b"].tolist() == [2, 4]


def test_dict_of_lists_becomes_a_dataframe_by_column() -> None:
    parsed = parse_input_data({"input_data": {"a": [1, 3], "b": [2, 4]}})
    assert isinstance(parsed, pd.DataFrame)
    assert parsed.to_dict(orient="list") == {"a": [1, 3], "b": [2, 4]}


def test_rows_take_the_signature_columns_for_a_tabular_model() -> None:
    parsed = parse_input_data({"input_data": [[1, 2]]}, columns=["a", "b"])
    assert list(parsed.columns) == ["a", "b"]


def test_tensor_models_get_arrays_even_for_dicts() -> None:
    parsed = parse_input_data({"input_data": {"x": [[1.0, 2.0]]}}, tensor=True)
    assert isinstance(parsed["x"], np.ndarray)


def test_predictions_become_json_values() -> None:
    assert to_jsonable(np.array([1.5, 2.5])) == [1.5, 2.5]
    assert to_jsonable({"a": np.array([1])}) == {"a": [1]}


def test_run_hands_the_parsed_input_and_params_to_predict() -> None:
    model = StandInModel()
    serving = MLflowServing(model=model)
    result = serving.run(json.dumps({"input_data": [[1, 2], [3, 4]], "params": {"top_k": 2}}))
    assert result == [3, 7]
    data, params = model.seen[0]
    assert data.tolist() == [[1, 2], [3, 4]]
    assert params == {"top_k": 2}


def test_run_answers_400_for_a_bad_payload() -> None:
    answer = MLflowServing(model=StandInModel()).run('{"rows": []}')
    assert isinstance(answer, AMLResponse)
    assert answer.status_code == 400
    assert json.loads(answer.get_data())["message"] == 'The body must be a JSON object with an "input_data" key.'


def test_find_model_looks_into_subfolders(tmp_path: Path) -> None:
    (tmp_path / "churn" / "1").mkdir(parents=True)
    (tmp_path / "churn" / "1" / "MLmodel").write_text("flavors: {}\n")
    assert find_model(tmp_path) == tmp_path / "churn" / "1"
    assert find_model(tmp_path / "nothing") is None


def test_mlflow_model_without_scoring_script_is_served_end_to_end(start_runtime, tmp_path: Path) -> None:
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, frame["a"] * 2 + frame["b"])
    mlflow_sklearn.save_model(
        model,
        str(tmp_path / "models" / "regressor"),
        serialization_format="cloudpickle",
        signature=infer_signature(frame, model.predict(frame)),
    )
    server = start_runtime(None, args=["--model_dir", str(tmp_path / "models")])
    split = server.post_json(
        "/score", {"input_data": {"columns": ["a", "b"], "index": [0, 1], "data": [[1.0, 0.0], [2.0, 1.0]]}}
    )
    assert split.status == 200, server.log()
    assert [round(v, 6) for v in split.json()] == [2.0, 5.0]
    by_column = server.post_json("/score", {"input_data": {"a": [3.0], "b": [0.0]}})
    assert [round(v, 6) for v in by_column.json()] == [6.0]
    rows = server.post_json("/score", {"input_data": [[1.0, 1.0]]})
    assert [round(v, 6) for v in rows.json()] == [3.0]
    bad = server.post_json("/score", {"rows": []})
    assert bad.status == 400


def test_mlflow_model_without_mlflow_installed_exits_3(start_runtime, tmp_path: Path) -> None:
    # An environment without mlflow: a folder first on the path whose `mlflow` cannot be imported,
    # as in a virtual environment that never installed it.
    blocker = tmp_path / "no-mlflow"
    (blocker / "mlflow").mkdir(parents=True)
    (blocker / "mlflow" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'mlflow'\")\n")
    model_dir = tmp_path / "models" / "m"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    server = start_runtime(
        None, args=["--model_dir", str(tmp_path / "models")], env={"PYTHONPATH": str(blocker)}, wait=False
    )
    assert server.proc.wait(timeout=60) == 3
    assert "mlflow is not installed in this environment" in server.log()
