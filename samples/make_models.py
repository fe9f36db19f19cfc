"""Make the samples' tiny models (nothing is downloaded but the packages that make them).

- model-1/model/, model-2/model/: two versions of a linear regression over 10 features, saved with joblib
  as Azure's sklearn samples do (a folder model: score.py reads AZUREML_MODEL_DIR/model/<file>).
- mlflow/model/: version 1 saved as an MLflow model, for a deployment without a scoring script.
- image/sample-image.png: a 16 × 16 picture for the image-in, image-out sample.

Run it with the packages the samples' environments pin, from the repository root:

    uv run --no-project --exclude-newer 2024-10-01 --with scikit-learn==1.5.2 --with mlflow-skinny==2.16.2 \
        --with pandas==2.2.3 python samples/make_models.py

(mlflow-skinny leaves out pandas, which `mlflow.sklearn` imports.)
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import joblib
import mlflow.sklearn
import numpy as np
from sklearn.linear_model import LinearRegression

HERE = Path(__file__).resolve().parent
FEATURES = 10


def regression(weights: np.ndarray) -> LinearRegression:
    """A LinearRegression fitted on exact data, so its predictions are round numbers."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 10, size=(50, FEATURES)).astype(float)
    model = LinearRegression().fit(x, x @ weights)
    model.coef_ = np.round(model.coef_, 6)
    model.intercept_ = float(np.round(model.intercept_, 6))
    return model


def png(width: int, height: int) -> bytes:
    """An RGB gradient as a PNG, written by hand (no imaging library)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((x * 16, y * 16, 128)) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main() -> None:
    version_1 = regression(np.ones(FEATURES))  # predicts the sum of the features
    version_2 = regression(np.arange(1, FEATURES + 1, dtype=float))  # a weighted sum: 1·x1 + 2·x2 + ...
    for folder, model in (("model-1", version_1), ("model-2", version_2)):
        target = HERE / folder / "model"
        target.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, target / "sklearn_regression_model.pkl")
    mlflow_dir = HERE / "mlflow" / "model"
    shutil.rmtree(mlflow_dir, ignore_errors=True)
    mlflow.sklearn.save_model(
        version_1, str(mlflow_dir), serialization_format="pickle", pip_requirements=["scikit-learn==1.5.2"]
    )
    (HERE / "image" / "sample-image.png").write_bytes(png(16, 16))
    print(f"models written under {HERE}")


if __name__ == "__main__":
    main()
