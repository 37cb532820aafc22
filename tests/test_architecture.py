"""The layout keeps its promises: public names at the top, no import cycles, no test code in the wheel."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

import improv

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "improv"

# Every name the README and the package docstring promise a Python user.
PUBLIC = ["Event", "ImprovError", "MidiFileError", "ModelFileError", "Note", "__version__", "events_to_notes",
          "notes_to_events", "read_midi", "read_midi_tracks", "render_file", "write_midi"]


def test_every_documented_public_name_imports_from_improv() -> None:
    for name in PUBLIC:
        assert getattr(improv, name) is not None, name
    assert set(PUBLIC) <= set(improv.__all__)
    from improv.synth import render_file  # the README's older spelling still works

    assert render_file is improv.render_file
    note = improv.Note(60, 90, 0.0, 0.5)
    assert improv.events_to_notes(improv.notes_to_events([note]))[0].pitch == 60


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("improv", cache_dir=None)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    # A package's __init__ that re-exports its own modules is not a cycle a reader trips over.
    edges = {m: {o for o in targets if not m.startswith(o + ".")} for m, targets in edges.items()}
    assert _cycles(edges) == []


def test_no_two_subpackages_import_each_other(graph: grimp.ImportGraph) -> None:
    def home(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module

    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for other in graph.find_modules_directly_imported_by(module):
            if home(other) != home(module):
                edges[home(module)].add(home(other))
    mutual = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    assert mutual == []
    assert _cycles(edges) == []


def test_layout_has_subpackages_and_few_top_level_modules() -> None:
    subpackages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    top_level = [p.name for p in PACKAGE.glob("*.py")]
    assert len(subpackages) >= 6, subpackages
    assert len(top_level) <= 5, top_level


def _oversized() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > 400:
            problems.append(f"{path.relative_to(REPO)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                problems.append(f"{path.relative_to(REPO)}: class {node.name} {node.end_lineno - node.lineno + 1} lines")
    return problems


def test_no_module_over_400_lines_and_no_class_over_300() -> None:
    assert _oversized() == []


def test_import_linter_contracts_hold() -> None:
    out = subprocess.run(["lint-imports"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "broken" in out.stdout and "0 broken" in out.stdout


@pytest.mark.slow
def test_the_wheel_carries_no_test_code(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("improv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("improv/live/engine") for n in names)  # the package is there
    assert any(n.endswith("improv-default.pt") for n in names)  # and the shipped model
    offenders = [n for n in names if "jack_server" in n or n.startswith("tests/") or "/tests/" in n
                 or Path(n).name.startswith("test_") or "conftest" in n]
    assert offenders == []
