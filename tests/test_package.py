"""The installed package: version, console script, and data found after a non-editable install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import improv

REPO = Path(__file__).resolve().parent.parent


def test_version_command_prints_the_version() -> None:
    out = subprocess.run([sys.executable, "-m", "improv", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"improv {improv.__version__}"
    assert improv.__version__[0].isdigit() and "unknown" not in improv.__version__


def test_help_lists_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "improv", "--help"], capture_output=True, text=True, check=True)
    assert "usage: improv" in out.stdout


@pytest.mark.slow
def test_models_data_is_found_after_a_non_editable_install(tmp_path: Path) -> None:
    """Build a wheel, install it into a bare target directory and look up models/ from there."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    shipped = sorted(p.name for p in (REPO / "models").iterdir() if p.is_file() and p.suffix != ".py")
    assert shipped, "models/ ships no data files"
    probe = (
        "import improv, improv.model.shipped as r, json;"
        "d = r.models_dir();"
        "print(json.dumps([improv.__file__, str(d), sorted(p.name for p in d.iterdir())]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path, env=env)
    import json

    module_file, models, found = json.loads(out.stdout)
    assert Path(module_file).is_relative_to(target), "imported the source tree, not the installed copy"
    assert Path(models).is_relative_to(target)
    assert set(shipped) <= set(found)


def test_models_are_found_from_a_source_checkout_that_is_not_the_installed_copy(tmp_path: Path) -> None:
    """`python -m improv` inside a clone after a plain `pip install .`: the clone's improv/ comes first
    on sys.path and has no `improv.models`; the checkout's models/ must be found instead."""
    code = ("import sys, importlib.abc\n"
            "class NoModels(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'improv.models': raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, NoModels())\n"
            "from improv.model.shipped import default_model_path\n"
            "print(default_model_path())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    path = Path(out.stdout.strip())
    assert path.is_file() and path.parent == REPO / "models"
