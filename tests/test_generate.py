"""`improv generate` with the shipped model: determinism, temperature, constraints, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import improv
from improv.model.generate import continue_notes
from improv.model.rolling_seed import Constraints
from improv.model.network import load
from improv.model.shipped import default_model_path

MODEL = default_model_path()


@pytest.fixture(scope="module")
def model():
    return load(MODEL)


@pytest.fixture(scope="module")
def primer() -> list[improv.Note]:
    """The opening of the Mozart K.545 fragment, kept out of training for demos like this."""
    from improv.data.corpus import corpus_dir, extract_work

    notes, _ = extract_work(corpus_dir() / "mozart" / "k545" / "movement1_exposition.mxl")
    return notes[:40]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "improv", "generate", *args], capture_output=True, text=True)


def test_same_seed_gives_the_same_file(tmp_path: Path, primer) -> None:
    source = tmp_path / "primer.mid"
    improv.write_midi(primer, source)
    a, b, c = tmp_path / "a.mid", tmp_path / "b.mid", tmp_path / "c.mid"
    for out, seed in ((a, "7"), (b, "7"), (c, "8")):
        result = run(str(source), "-o", str(out), "--notes", "32", "--random-seed", seed)
        assert result.returncode == 0, result.stderr
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    tracks = improv.read_midi_tracks(a)
    assert list(tracks) == ["primer", "continuation"]
    assert len(tracks["continuation"]) == 32
    assert min(n.start for n in tracks["continuation"]) >= max(n.start for n in tracks["primer"])


def test_low_temperature_uses_fewer_distinct_pitches_than_high(model, primer) -> None:
    def distinct(temperature: float) -> list[int]:
        counts = []
        for seed in range(6):
            notes = continue_notes(model, primer, 48, temperature, np.random.default_rng(seed))
            counts.append(len({n.pitch for n in notes}))
        return counts

    low, high = distinct(0.3), distinct(2.0)
    assert np.mean(low) < np.mean(high) - 3, (low, high)
    assert max(low) < min(high), (low, high)


def test_key_and_range_constraints_hold(model, primer) -> None:
    notes = continue_notes(model, primer, 64, 2.0, np.random.default_rng(0), Constraints(48, 72, (9, "minor")))
    a_minor = {9, 11, 0, 2, 4, 5, 7}
    assert all(48 <= n.pitch <= 72 and n.pitch % 12 in a_minor for n in notes)


def test_without_a_primer_it_starts_from_silence(tmp_path: Path) -> None:
    out = tmp_path / "s.mid"
    result = run("-o", str(out), "--notes", "16", "--random-seed", "1", "--key", "C:major", "--range", "36-96")
    assert result.returncode == 0, result.stderr
    tracks = improv.read_midi_tracks(out)
    assert len(tracks["continuation"]) == 16 and "primer" not in tracks


@pytest.mark.parametrize("content", [None, b"garbage bytes, not MIDI"])
def test_bad_primer_is_one_line_exit_2(tmp_path: Path, content: bytes | None) -> None:
    primer = tmp_path / "p.mid"
    if content is not None:
        primer.write_bytes(content)
    result = run(str(primer), "-o", str(tmp_path / "o.mid"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(primer) in result.stderr


def test_bad_model_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "m.pt"
    bad.write_text("nope")
    result = run("-o", str(tmp_path / "o.mid"), "--model", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and str(bad) in result.stderr
