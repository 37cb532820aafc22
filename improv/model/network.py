"""The model's public names in one place: the network, its single-step twin, the model file.

`lstm` holds the trainable network (its config and shape, torch-free, in `model_config`),
`step_model` the TorchScript step a model file carries, `numpy_step` the step improv plays with,
`model_file` export and load. Importing this module imports torch; the live path imports
`model_file` and `model_config` instead.
"""

from improv.model.lstm import HEADS, INTERVAL_RANGE, N_INTERVAL_IN, N_INTERVAL_OUT, ImprovNet, ModelConfig
from improv.model.model_file import LoadedModel, export, load, network_from
from improv.model.numpy_step import NumpyStep
from improv.model.step_model import FORMAT, FORMAT_VERSION, StepModel

__all__ = [
    "FORMAT", "FORMAT_VERSION", "HEADS", "INTERVAL_RANGE", "N_INTERVAL_IN", "N_INTERVAL_OUT",
    "ImprovNet", "LoadedModel", "ModelConfig", "NumpyStep", "StepModel", "export", "load", "network_from",
]
