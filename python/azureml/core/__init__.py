"""azureml.core as trainrun provides it: Run (the logging and tagging part of Azure
ML's Run), Experiment (its name), enough for training scripts to run unchanged.
Metrics go to trainrun's run history (the `trainrun` module); what belongs to the
Azure ML service (registering models, submitting child runs) is refused with
NotImplementedError naming the call."""
from azureml.core.run import Experiment, Run  # noqa: F401

__all__ = ["Run", "Experiment"]
