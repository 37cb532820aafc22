"""The model file: one TorchScript file with the config and weights, written by `export`, read by `load`.

nanoGPT's habit: the config travels with the weights (the `improv.json` extra file), and `load`
rebuilds the network from them with today's code, so every file, old or new, steps and samples
with one implementation (`numpy_step` + `sampling`). The scripted `StepModel` inside keeps the file
usable with plain `torch.jit.load`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from improv.errors import ModelFileError
from improv.model.lstm import ImprovNet, ModelConfig
from improv.model.numpy_step import NumpyStep
from improv.model.step_model import FORMAT, FORMAT_VERSION, StepModel
from improv.music.encoding import Bins


def export(net: ImprovNet, path: Path, summary: dict[str, Any] | None = None) -> None:
    """Write a self-contained TorchScript file (CPU, eval mode)."""
    net = net.to("cpu").eval()
    step = StepModel(net, summary).eval()
    with torch.no_grad():
        scripted = torch.jit.script(step)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(net.config), "summary": summary or {}}
    torch.jit.save(scripted, str(path), _extra_files={"improv.json": json.dumps(meta)})


@dataclass
class LoadedModel:
    """A model file, loaded: its scripted module as saved, and the step rebuilt from its weights.

    `step` is what improv plays with (today's code, whatever code wrote the file); `module` is the
    file's own TorchScript module, for its weights and for tools that only have torch.
    """

    module: torch.jit.ScriptModule
    bins: Bins
    config: dict
    summary: dict
    path: Path
    step: NumpyStep


def load(path: str | Path) -> LoadedModel:
    """Load an improv model file; anything else gives a one-line `ModelFileError`."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a directory, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    extra = {"improv.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as error:
        reason = " ".join(str(error).split()).split(". ")[0][:100]
        raise ModelFileError(f"{path}: not an improv model (not a TorchScript file: {reason})") from None
    try:
        meta = json.loads(extra["improv.json"] or "{}")
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an improv model (TorchScript file without improv metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: improv model format {meta.get('format_version')} is not supported (need {FORMAT_VERSION})")
    module.eval()
    config = meta["config"]
    step = NumpyStep(_network(module, config, path))
    return LoadedModel(module, Bins.from_dict(config["bins"]), config, meta.get("summary", {}), path, step)


# Parameters of features added after the first files shipped: older files lack them, and they stay zero.
_ADDED_LATER = {
    "interval_in.weight", "pitch_interval_out.weight", "pitch_interval_out.bias",
    "rhythm_lstm.weight_ih_l0", "rhythm_lstm.weight_hh_l0", "rhythm_lstm.bias_ih_l0", "rhythm_lstm.bias_hh_l0",
    "rhythm_mix.weight", "rhythm_mix.bias", "times_in.weight", "times_in.bias",
}


def network_from(model: LoadedModel) -> ImprovNet:
    """The trainable `ImprovNet` behind a loaded model file (for batched scoring or fine-tuning).

    Files from before relative pitch existed lack its (zero) parameters; they stay zero.
    """
    return _network(model.module, model.config, model.path)


def _network(module: torch.jit.ScriptModule, config: dict, path: Path) -> ImprovNet:
    """A fresh `ImprovNet` (today's code) from a file's config and its scripted step's weights."""
    try:
        net = ImprovNet(ModelConfig(**config))
    except TypeError as error:
        raise ModelFileError(f"{path}: model config not understood by this improv ({error}); update improv") from None
    state = {}
    for key, value in module.state_dict().items():
        if key.startswith("cells."):
            _, layer, name = key.split(".")
            key = f"lstm.{name}_l{layer}"
        elif key.startswith("rhythm_cell."):
            key = f"rhythm_lstm.{key.split('.')[1]}_l0"
        state[key] = value
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - _ADDED_LATER:
        raise ModelFileError(f"{path}: model weights do not match its config ({len(missing)} missing, "
                             f"{len(unexpected)} unexpected)")
    return net.eval()
