"""Azure ML's `azureml.contrib.services` names for scoring scripts, served by Studio's runtime."""
