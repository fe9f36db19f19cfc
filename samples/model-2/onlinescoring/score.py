"""Azure's sklearn sample scoring script: the model folder is registered as model/, so its file is under it."""

import json
import logging
import os

import joblib
import numpy


def init():
    """Load the model once, when the instance starts."""
    global model
    # AZUREML_MODEL_DIR is where the registered model is mounted; a folder model keeps its name (model/).
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")
    model = joblib.load(model_path)
    logging.info("Init complete")


def run(raw_data):
    """Predict on {"data": [[10 numbers], ...]}."""
    logging.info("model 2: request received")
    data = numpy.array(json.loads(raw_data)["data"])
    result = model.predict(data)
    logging.info("Request processed")
    return result.tolist()
