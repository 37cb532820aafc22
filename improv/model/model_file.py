"""The model file: one TorchScript file with the config and weights, written by `export`, read by `load`.

nanoGPT's habit: the config travels with the weights (the `improv.json` extra file), and `load`
rebuilds the network from them with today's code, so every file, old or new, steps and samples
with one implementation (`numpy_step` + `sampling`). The scripted `StepModel` inside keeps the file
usable with plain `torch.jit.load`.

The rebuilt weights are cached by the file's sha256 (the user cache, `CACHE_VERSION`), so playing
a file a second time reads numpy arrays and imports no torch: the live instrument's memory and
start-up are numpy's and the compiled step's, not torch's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from improv.errors import ModelFileError
from improv.model.model_config import FORMAT, FORMAT_VERSION, ModelConfig
from improv.model.numpy_step import NumpyStep
from improv.music.encoding import Bins

if TYPE_CHECKING:  # torch only where a network is built or written: playing a cached file needs none
    import torch

    from improv.model.lstm import ImprovNet

# The weights of a file, as `_network` rebuilds them, kept as .npz by the file's sha256: a later
# start reads them with numpy and never imports torch (about 200 MB and a second less). Bump when
# `_network`'s rebuilding changes, so old entries are not used.
CACHE_VERSION = 1


def export(net: ImprovNet, path: Path, summary: dict[str, Any] | None = None) -> None:
    """Write a self-contained TorchScript file (CPU, eval mode)."""
    import torch

    from improv.model.step_model import StepModel

    net = net.to("cpu").eval()
    step = StepModel(net, summary).eval()
    with torch.no_grad():
        scripted = torch.jit.script(step)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(net.config), "summary": summary or {}}
    torch.jit.save(scripted, str(path), _extra_files={"improv.json": json.dumps(meta)})


@dataclass
class LoadedModel:
    """A model file, loaded: the step rebuilt from its weights, and its scripted module on demand.

    `step` is what improv plays with (today's code, whatever code wrote the file); `module` is the
    file's own TorchScript module, for its weights and for tools that only have torch: loaded (and
    torch imported) the first time it is asked for.
    """

    bins: Bins
    config: dict
    summary: dict
    path: Path
    step: NumpyStep
    _module: Any = field(default=None, repr=False)

    @property
    def module(self) -> torch.jit.ScriptModule:
        if self._module is None:
            self._module, _ = _script(self.path)
        return self._module


def load(path: str | Path, cache_dir: Path | None = None) -> LoadedModel:
    """Load an improv model file; anything else gives a one-line `ModelFileError`.

    The weights come from the cache (`cache_dir`, default the user cache) when this exact file was
    loaded before, else from the file with torch, and are cached for next time (if the cache can be
    written: a read-only home plays all the same).
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a directory, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    entry = (cache_dir or _cache_dir()) / f"{hashlib.sha256(data).hexdigest()}-v{CACHE_VERSION}.npz"
    cached = _read_cache(entry)
    module = None
    if cached is None:  # the bytes just hashed, not the file again: what is cached is what was keyed
        module, meta = _script(path, data)
        weights = {k: v.detach().to("cpu").float().numpy() for k, v in _network(module, meta["config"], path).state_dict().items()}
        _write_cache(entry, meta, weights)
    else:
        meta, weights = cached
    config = meta["config"]
    step = NumpyStep(_model_config(config, path), weights)
    return LoadedModel(Bins.from_dict(config["bins"]), config, meta.get("summary", {}), path, step, module)


def _script(path: Path, data: bytes | None = None) -> tuple[torch.jit.ScriptModule, dict]:
    """The file's TorchScript module (eval mode) and its improv metadata, checked (from `data`, the
    file's bytes, when they were read already)."""
    import torch

    if data is not None and not data.startswith(b"PK"):  # torch says less of bytes than of a file
        raise ModelFileError(f"{path}: not an improv model (not a TorchScript file: not a ZIP archive)")
    extra = {"improv.json": ""}
    try:
        module = torch.jit.load(io.BytesIO(data) if data is not None else str(path), map_location="cpu",
                                _extra_files=extra)
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
    return module.eval(), meta


def _model_config(config: dict, path: Path) -> ModelConfig:
    try:
        return ModelConfig(**config)
    except TypeError as error:
        raise ModelFileError(f"{path}: model config not understood by this improv ({error}); update improv") from None


def _cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("improv")) / "models"


def _read_cache(entry: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The metadata and weights cached in `entry`, or None (absent, or unreadable: then the file is read)."""
    try:
        with np.load(entry, allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            weights = {name: archive[name] for name in archive.files if name != "__meta__"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if meta.get("format") != FORMAT or not all(w.dtype == np.float32 for w in weights.values()):
        return None
    return meta, weights


def _write_cache(entry: Path, meta: dict, weights: dict[str, np.ndarray]) -> None:
    """Write `entry` whole or not at all (a temporary file renamed into place); a cache that cannot
    be written is no error."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, __meta__=np.array(json.dumps(meta)), **weights)
        os.replace(tmp, entry)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


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
    from improv.model.lstm import ImprovNet

    net = ImprovNet(_model_config(config, path))
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
