"""Finding files that ship inside the package, however it was installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "improv-default.pt"
MODEL_CARD_NAME = "MODEL_CARD.md"


def models_dir() -> Path:
    """The directory of the shipped models (installed as `improv.models`).

    Run from a source checkout that is not the installed copy (`python -m improv` in the clone
    after a plain `pip install .`), `improv.models` does not exist: the checkout's `models/` is it.
    """
    try:
        return Path(str(resources.files("improv.models")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "models"


def default_model_path() -> Path:
    return models_dir() / DEFAULT_MODEL_NAME


def model_card_path() -> Path:
    return models_dir() / MODEL_CARD_NAME
