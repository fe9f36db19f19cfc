"""The regression behind inference-schema decorators: typed input, and a swagger.json generated from them."""

import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl"))


@input_schema("data", NumpyParameterType(np.array([[1.0] * 10])))
@output_schema(NumpyParameterType(np.array([55.0])))
def run(data):
    # `data` arrives as a numpy array, decoded by inference-schema from {"data": [[...]]}.
    return model.predict(data).tolist()
