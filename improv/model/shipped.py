"""The model that ships inside the package: where it is, however improv was installed, and loading it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from improv.errors import ModelFileError
from improv.model.model_file import LoadedModel, load

DEFAULT_MODEL_NAME = "improv-default.pt"


def models_dir() -> Path:
    """The directory of the shipped models (installed as `improv.models`).

    Run from a source checkout that is not the installed copy (`python -m improv` in the clone
    after a plain `pip install .`), `improv.models` does not exist: the checkout's `models/` is it.
    """
    try:
        return Path(str(resources.files("improv.models")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "models"


def default_model_path() -> Path:
    return models_dir() / DEFAULT_MODEL_NAME


def resolve_model(path: Path | None) -> LoadedModel:
    """Load `path`, or the shipped default model when none is given."""
    target = path or default_model_path()
    if path is None and not target.is_file():
        raise ModelFileError(f"{target}: the default model is missing; train one with 'improv train' and pass --model")
    return load(target)
