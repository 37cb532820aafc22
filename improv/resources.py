"""Finding files that ship inside the package, however it was installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "improv-default.pt"
MODEL_CARD_NAME = "MODEL_CARD.md"


def models_dir() -> Path:
    """The directory of the shipped models (installed as `improv.models`)."""
    return Path(str(resources.files("improv.models")))


def default_model_path() -> Path:
    return models_dir() / DEFAULT_MODEL_NAME


def model_card_path() -> Path:
    return models_dir() / MODEL_CARD_NAME
