"""The parsed corpus on disk: one compressed file of every work's notes, keyed by the extractor's version and
the files parsed, so a second run starts at once."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np



from improv.data.scores import _Extracted


# --------------------------------------------------------------------- cache

# Bump when extraction changes what notes come out; old caches are then ignored.
EXTRACTOR_VERSION = 1


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("improv"))



def _save_cache(path: Path, extracted: dict[str, _Extracted], failed: dict[str, str]) -> None:
    names = sorted(extracted)
    bounds = np.zeros(len(names) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum([len(extracted[name].pitch) for name in names])

    def joined(field: str, dtype: Any) -> np.ndarray:
        arrays = [getattr(extracted[name], field) for name in names]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp.npz")
    os.close(handle)
    try:
        np.savez_compressed(
            temporary,
            names=np.array(names, dtype=str),
            bounds=bounds,
            has_dynamics=np.array([extracted[name].has_dynamics for name in names], dtype=bool),
            merged_unisons=np.array([extracted[name].merged_unisons for name in names], dtype=np.int64),
            pitch=joined("pitch", np.uint8),
            velocity=joined("velocity", np.uint8),
            start=joined("start", np.float64),
            duration=joined("duration", np.float64),
            failed=np.array(json.dumps(failed)),
            extractor_version=np.array(EXTRACTOR_VERSION),
        )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _load_cache(path: Path) -> tuple[dict[str, _Extracted], dict[str, str]]:
    with np.load(path, allow_pickle=False) as data:
        if int(data["extractor_version"]) != EXTRACTOR_VERSION:
            raise ValueError(f"cache {path} is from extractor version {int(data['extractor_version'])}")
        names = data["names"].tolist()
        bounds = data["bounds"]
        fields = {key: data[key] for key in ("pitch", "velocity", "start", "duration")}
        has_dynamics = data["has_dynamics"].tolist()
        merged = data["merged_unisons"].tolist()
        failed = json.loads(str(data["failed"]))
    extracted = {
        name: _Extracted(
            *(fields[key][bounds[i] : bounds[i + 1]] for key in ("pitch", "velocity", "start", "duration")),
            has_dynamics=has_dynamics[i],
            merged_unisons=merged[i],
        )
        for i, name in enumerate(names)
    }
    return extracted, failed
