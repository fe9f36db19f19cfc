"""A scoring script whose init() fails: the model file it names is not in the model folder."""

import os

import joblib


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/regression.pkl"))


def run(raw_data):
    return model.predict(raw_data)
