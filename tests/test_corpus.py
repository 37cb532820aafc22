"""The default corpus: selection, held-out split, extraction rules, cache.

Only a few small real scores are parsed here; the full corpus is never loaded.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("music21")

from music21 import chord, dynamics, instrument, note, stream, tempo, tie  # noqa: E402

from improv.data import corpus, tunes  # noqa: E402
from improv.data.corpus import Work, default_work_paths, extract_work, notes_from_score, split_for  # noqa: E402

# CORPUS.md §4, "valid works (default set)", chorale line.
CORPUS_MD_VALID_CHORALES = [
    "bach/bwv1.6", "bach/bwv116.6", "bach/bwv120.6", "bach/bwv13.6", "bach/bwv133.6", "bach/bwv144.6",
    "bach/bwv153.9", "bach/bwv164.6", "bach/bwv20.7", "bach/bwv227.3", "bach/bwv245.11", "bach/bwv245.15",
    "bach/bwv245.17", "bach/bwv245.28", "bach/bwv248.64-s", "bach/bwv268", "bach/bwv276", "bach/bwv286",
    "bach/bwv294", "bach/bwv305", "bach/bwv311", "bach/bwv323", "bach/bwv330", "bach/bwv363", "bach/bwv381",
    "bach/bwv382", "bach/bwv388", "bach/bwv395", "bach/bwv416", "bach/bwv417", "bach/bwv429", "bach/bwv67.7",
    "bach/bwv83.5", "bach/bwv88.7", "bach/bwv92.9", "bach/bwv93.7",
]  # fmt: skip


@pytest.fixture(scope="module")
def paths() -> list[tuple[str, str, Path]]:
    return default_work_paths()


@pytest.fixture(scope="module")
def path_of(paths: list[tuple[str, str, Path]]) -> dict[str, Path]:
    return {name: path for name, _, path in paths}


# ------------------------------------------------------------------ selection


def test_default_set_has_corpus_md_file_and_piece_counts(paths: list[tuple[str, str, Path]]) -> None:
    files = Counter(category for _, category, _ in paths)
    pieces = Counter(category for category, _ in {(c, corpus.piece_of(n)) for n, c, _ in paths})
    assert files == {"piano_solo": 12, "piano_plus": 7, "string_quartet": 52, "chorale": 410}
    assert pieces == {"piano_solo": 11, "piano_plus": 7, "string_quartet": 18, "chorale": 410}


def test_default_set_leaves_out_duplicates_and_test_files(paths: list[tuple[str, str, Path]]) -> None:
    names = {name for name, _, _ in paths}
    suffixes = {path.suffix for _, _, path in paths}
    assert not any(name.split("/")[0] in {"demos", "theoryExercises", "webern"} for name in names)
    assert ".krn" not in {path.suffix for name, _, path in paths if name.startswith(("bach/", "beethoven/"))}
    assert "schumann_robert/opus48no2" not in names  # same song as dichterliebe_no2
    assert suffixes <= {".mxl", ".xml", ".krn", ".musicxml"}
    assert len(names) == len(paths)
    assert paths == sorted(paths)


def test_bwv846_is_keyboard_music_not_a_chorale(paths: list[tuple[str, str, Path]]) -> None:
    categories = {name: category for name, category, _ in paths}
    assert categories["bach/bwv846"] == "piano_solo"
    assert categories["johnson_j_r/lift_every_voice"] == "chorale"
    assert categories["schubert/Lindenbaum"] == "piano_plus"
    assert categories["beethoven/opus18no1/movement1"] == "string_quartet"


def test_work_paths_exist_and_need_no_parsing(paths: list[tuple[str, str, Path]]) -> None:
    assert all(path.is_file() for _, _, path in paths)


# ---------------------------------------------------------------------- split


def test_valid_chorales_are_exactly_corpus_md_list(paths: list[tuple[str, str, Path]]) -> None:
    valid = sorted(name for name, category, _ in paths if category == "chorale" and split_for(name, category) == "valid")
    assert valid == sorted(CORPUS_MD_VALID_CHORALES)
    assert len(valid) == 36


@pytest.mark.parametrize(
    ("name", "category", "split"),
    [
        ("mozart/k458/movement1", "string_quartet", "valid"),
        ("mozart/k458/movement4", "string_quartet", "valid"),
        ("beethoven/opus59no3/movement1", "string_quartet", "valid"),
        ("beethoven/opus59no3/movement4", "string_quartet", "valid"),
        ("chopin/mazurka06-2", "piano_solo", "valid"),
        ("schubert/Lindenbaum", "piano_plus", "valid"),
        ("mozart/k545/movement1_exposition", "piano_solo", "seed"),
        ("mozart/k80/movement1", "string_quartet", "train"),
        ("beethoven/opus59no2/movement1", "string_quartet", "train"),
        ("bach/bwv1.6", "chorale", "valid"),
        ("bach/bwv66.6", "chorale", "train"),
        ("johnson_j_r/lift_every_voice", "chorale", "train"),
    ],
)
def test_split_for(name: str, category: str, split: str) -> None:
    assert split_for(name, category) == split


def test_only_chorales_are_held_out_by_hash() -> None:
    assert corpus.chorale_hash("bach/bwv1.6") % 10 == 0
    assert split_for("bach/bwv1.6", "string_quartet") == "train"


def test_every_named_held_out_movement_is_valid(paths: list[tuple[str, str, Path]]) -> None:
    held_out = {name: split_for(name, c) for name, c, _ in paths if corpus.piece_of(name) in corpus.VALID_PIECES}
    assert len(held_out) == 4 + 4 + 1 + 1
    assert set(held_out.values()) == {"valid"}


def test_no_piece_and_no_name_is_in_two_splits(paths: list[tuple[str, str, Path]]) -> None:
    splits_of_piece: dict[str, set[str]] = {}
    for name, category, _ in paths:
        splits_of_piece.setdefault(corpus.piece_of(name), set()).add(split_for(name, category))
    assert all(len(splits) == 1 for splits in splits_of_piece.values())
    splits = Counter(split_for(name, category) for name, category, _ in paths)
    assert splits == {"train": 434, "valid": 46, "seed": 1}


@pytest.mark.parametrize(
    ("name", "piece"),
    [
        ("mozart/k458/movement1", "mozart/k458"),
        ("bach/bwv1.6", "bach/bwv1.6"),
        ("schoenberg/opus19/movement6", "schoenberg/opus19"),
        ("beethoven/opus132", "beethoven/opus132"),
    ],
)
def test_piece_of(name: str, piece: str) -> None:
    assert corpus.piece_of(name) == piece


# ------------------------------------------------------- extraction, in memory


def _part(*elements: tuple[float, object], part_id: str = "P1") -> stream.Part:
    part = stream.Part(id=part_id)
    for offset, element in elements:
        part.insert(offset, element)
    return part


def _score(*parts: stream.Part, bpm: float | None = None) -> stream.Score:
    score = stream.Score()
    for part in parts:
        score.insert(0, part)
    if bpm is not None:
        score.parts[0].insert(0, tempo.MetronomeMark(number=bpm))
    return score


def _tied(name: str, quarters: float, kind: str) -> note.Note:
    n = note.Note(name, quarterLength=quarters)
    n.tie = tie.Tie(kind)
    return n


def test_default_tempo_is_quarter_120_and_times_are_seconds() -> None:
    notes, has_dynamics = notes_from_score(_score(_part((0, note.Note("C4")), (1, note.Note("D4", quarterLength=2)))))
    assert [(n.pitch, n.start, n.duration, n.velocity) for n in notes] == [(60, 0.0, 0.5, 80), (62, 0.5, 1.0, 80)]
    assert not has_dynamics


def test_tempo_changes_are_honoured_mid_note() -> None:
    part = _part((0, tempo.MetronomeMark(number=60)), (0, note.Note("C4", quarterLength=4)), (2, tempo.MetronomeMark(number=120)))
    part.insert(4, note.Note("E4"))
    notes, _ = notes_from_score(_score(part))
    assert [(n.start, n.duration) for n in notes] == [(0.0, 3.0), (3.0, 0.5)]


@pytest.mark.parametrize(
    ("offset", "seconds"),
    [(0.0, 0.0), (1.0, 0.5), (2.0, 1.0), (3.0, 2.0), (4.0, 3.0), (5.0, 3.25)],
)
def test_tempo_map(offset: float, seconds: float) -> None:
    tempo_map = corpus._TempoMap([(2.0, 1.0), (4.0, 0.25)])  # q=120, from 2: q=60, from 4: q=240
    assert tempo_map.seconds(offset) == pytest.approx(seconds)


def test_ties_merge_also_between_different_chords() -> None:
    # Lindenbaum bar 1-2: <E2 B2~> then <B1 ~B2>: the B2 sounds once, 3.5 quarters long
    first = chord.Chord([note.Note("E2"), _tied("B2", 3, "start")], quarterLength=3)
    second = chord.Chord([note.Note("B1"), _tied("B2", 0.5, "stop")], quarterLength=0.5)
    notes, _ = notes_from_score(_score(_part((0, first), (3, second))))
    assert sorted((n.pitch, n.start, n.duration) for n in notes) == [(35, 1.5, 0.25), (40, 0.0, 1.5), (47, 0.0, 1.75)]


def test_tie_chain_start_continue_stop_is_one_note() -> None:
    part = _part((0, _tied("G4", 1, "start")), (1, _tied("G4", 1, "continue")), (2, _tied("G4", 1, "stop")), (3, note.Note("G4")))
    notes, _ = notes_from_score(_score(part))
    assert [(n.start, n.duration) for n in notes] == [(0.0, 1.5), (1.5, 0.5)]


def test_orphan_tie_stop_still_sounds() -> None:
    notes, _ = notes_from_score(_score(_part((0, _tied("A4", 1, "stop")))))
    assert [(n.pitch, n.duration) for n in notes] == [(69, 0.5)]


def test_grace_unpitched_and_chord_symbols_are_dropped() -> None:
    from music21 import harmony

    grace = note.Note("F5").getGrace()
    part = _part((0, grace), (0, note.Unpitched(displayName="C4")), (0, harmony.ChordSymbol("C")), (0, note.Note("C4")))
    notes, _ = notes_from_score(_score(part))
    assert [n.pitch for n in notes] == [60]


def test_unison_doublings_between_parts_merge_into_the_longer_louder_note() -> None:
    upper = _part((0, dynamics.Dynamic("f")), (0, note.Note("C4")), part_id="P1")
    lower = _part((0, dynamics.Dynamic("p")), (0, note.Note("C4", quarterLength=2)), (0, note.Note("C3")), part_id="P2")
    notes, _ = notes_from_score(_score(upper, lower))
    assert [(n.pitch, n.duration, n.velocity) for n in notes] == [(48, 0.5, 55), (60, 1.0, 95)]


def test_transposing_instruments_sound_at_concert_pitch() -> None:
    part = _part((0, instrument.Clarinet()), (0, note.Note("D4")))
    score = _score(part)
    score.atSoundingPitch = False
    notes, _ = notes_from_score(score)
    assert [n.pitch for n in notes] == [60]  # written D4 on a B-flat clarinet sounds C4
    assert score.parts[0].recurse().notes[0].pitch.midi == 62  # the caller's score is untouched


def test_notes_are_sorted_by_onset_then_pitch() -> None:
    part = _part((0, note.Note("G4")), (0, chord.Chord(["E4", "C4"])), (1, note.Note("C5")))
    notes, _ = notes_from_score(_score(part))
    assert [(n.start, n.pitch) for n in notes] == [(0.0, 60), (0.0, 64), (0.0, 67), (0.5, 72)]


# ------------------------------------------------------------------- dynamics


@pytest.mark.parametrize(
    ("marks", "offset", "velocity"),
    [
        ([], 0.0, 80),
        ([(1.0, "pp")], 0.0, 80),
        ([(1.0, "pp")], 1.0, 40),
        ([(0.0, "p"), (2.0, "ff")], 1.5, 55),
        ([(0.0, "p"), (2.0, "ff")], 2.0, 110),
        ([(0.0, "p"), (2.0, "sf")], 2.0, 75),  # accent on the level in force
        ([(0.0, "p"), (2.0, "sf")], 3.0, 55),  # ...which then holds again
        ([(0.0, "ff"), (2.0, "sfz")], 2.0, 127),
        ([(0.0, "ff"), (2.0, "fp")], 2.0, 95),
        ([(0.0, "ff"), (2.0, "fp")], 2.5, 55),
        ([(0.0, "mf"), (0.0, "dolce")], 1.0, 80),
    ],
)
def test_dynamic_velocity(marks: list[tuple[float, str]], offset: float, velocity: int) -> None:
    assert corpus._Dynamics(marks).velocity(offset) == velocity


def test_unknown_marks_are_not_dynamics() -> None:
    assert not corpus._Dynamics([(0.0, "dolce")]).present
    assert corpus._Dynamics([(0.0, "p")]).present


def test_dynamics_of_one_piano_staff_apply_to_the_other() -> None:
    right = stream.PartStaff(id="P1-Staff1")
    right.insert(0, dynamics.Dynamic("pp"))
    right.insert(0, note.Note("C5"))
    left = stream.PartStaff(id="P1-Staff2")
    left.insert(0, note.Note("C3"))
    other = _part((0, note.Note("E4")), part_id="P2")
    notes, has_dynamics = notes_from_score(_score(right, left, other))
    assert has_dynamics
    assert {n.pitch: n.velocity for n in notes} == {72: 40, 48: 40, 64: 80}


def test_velocities_are_monotonic_in_loudness() -> None:
    levels = ["pppp", "ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "ffff"]
    velocities = [corpus.DYNAMIC_VELOCITY[level] for level in levels]
    assert velocities == sorted(velocities)
    assert all(1 <= v <= 127 for v in corpus.DYNAMIC_VELOCITY.values())


# ----------------------------------------------------- extraction, real files


def test_real_chorale_gives_sane_notes(path_of: dict[str, Path]) -> None:
    notes, has_dynamics = extract_work(path_of["bach/bwv165.6"])
    assert not has_dynamics
    assert len(notes) > 100
    assert notes == sorted(notes, key=lambda n: (n.start, n.pitch))
    assert all(36 <= n.pitch <= 84 for n in notes)
    assert all(n.duration > 0 for n in notes)
    assert {n.velocity for n in notes} == {corpus.DEFAULT_VELOCITY}
    steps = [b.start - a.start for a, b in zip(notes, notes[1:])]
    assert steps.count(0.0) > len(notes) / 3  # four voices: mostly chords
    assert notes[0].start == 0.0
    # the file asks for quarter = 96: every onset lies on the 16th-note grid of 0.15625 s
    assert all(abs(n.start / 0.15625 - round(n.start / 0.15625)) < 1e-6 for n in notes)


def test_real_quartet_movement_with_dynamics_gives_several_velocities(path_of: dict[str, Path]) -> None:
    notes, has_dynamics = extract_work(path_of["mozart/k80/movement3"])
    assert has_dynamics
    assert len({n.velocity for n in notes}) >= 3
    assert min(n.pitch for n in notes) >= 36  # cello C string
    assert len({n.start for n in notes}) < len(notes)


# ---------------------------------------------------------------------- cache


def _raise(task: tuple[str, str]) -> None:
    raise AssertionError(f"parsed {task[0]} although it was cached")


def test_cache_round_trip(tmp_path: Path, path_of: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = [("bach/bwv165.6", "chorale", path_of["bach/bwv165.6"]),
              ("mozart/k545/movement1_exposition", "piano_solo", path_of["mozart/k545/movement1_exposition"])]  # fmt: skip
    cache_file = tmp_path / "cache" / "corpus.npz"
    seen: list[tuple[int, int, str]] = []
    first = corpus.load_works(chosen, cache_file, workers=1, progress=lambda *args: seen.append(args))
    assert cache_file.is_file()
    assert sorted(seen) == [(1, 2, "mozart/k545/movement1_exposition"), (2, 2, "bach/bwv165.6")]

    monkeypatch.setattr(corpus, "_extract_task", _raise)
    second = corpus.load_works(chosen, cache_file, workers=1)
    assert second == first
    assert [(w.name, w.split, w.category, w.has_dynamics) for w in second] == [
        ("bach/bwv165.6", "train", "chorale", False),
        ("mozart/k545/movement1_exposition", "seed", "piano_solo", first[1].has_dynamics),
    ]
    assert all(isinstance(w, Work) and w.notes for w in second)
    assert list(tmp_path.rglob("*.tmp.npz")) == []


def test_cache_of_another_selection_is_rebuilt(tmp_path: Path, path_of: dict[str, Path]) -> None:
    cache_file = tmp_path / "corpus.npz"
    corpus.load_works([("bach/bwv165.6", "chorale", path_of["bach/bwv165.6"])], cache_file, workers=1)
    works = corpus.load_works([("bach/bwv66.6", "chorale", path_of["bach/bwv66.6"])], cache_file, workers=1)
    assert [w.name for w in works] == ["bach/bwv66.6"]


def test_a_broken_file_is_skipped_with_one_warning(
    tmp_path: Path, path_of: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<score-partwise><part id='P1'><measure", encoding="utf-8")
    chosen = [("bach/bwv165.6", "chorale", path_of["bach/bwv165.6"]), ("test/broken", "chorale", broken)]
    cache_file = tmp_path / "corpus.npz"
    with caplog.at_level(logging.WARNING, logger="improv.data.corpus"):
        works = corpus.load_works(chosen, cache_file, workers=1)
    assert [w.name for w in works] == ["bach/bwv165.6"]
    warnings = [r.getMessage() for r in caplog.records if "test/broken" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="improv.data.corpus"):
        again = corpus.load_works(chosen, cache_file, workers=1)  # from the cache: still warned
    assert again == works
    assert any("test/broken" in r.getMessage() for r in caplog.records)


def test_cache_path_is_keyed_by_versions_and_outside_the_repo(paths: list[tuple[str, str, Path]]) -> None:
    import music21

    path = corpus.cache_path(paths=paths)
    assert music21.__version__ in path.name
    assert f"x{corpus.EXTRACTOR_VERSION}" in path.name
    assert Path(__file__).resolve().parents[1] not in path.resolve().parents


def test_corpus_summary_counts() -> None:
    from improv.music.events import Note

    works = [
        Work("a/x", "chorale", "train", [Note(60, 80, 0.0, 1.0)], False),
        Work("b/y/movement1", "string_quartet", "valid", [Note(60, 80, 0.0, 1.0), Note(64, 95, 1.0, 2.0)], True, 3),
    ]
    summary = corpus.corpus_summary(works)
    assert summary["notes"] == 3
    assert summary["merged_unisons"] == 3
    assert summary["by_split"]["valid"] == {"works": 1, "notes": 2, "with_dynamics": 1}
    assert summary["notes_by_category_and_split"] == {"chorale": {"train": 1}, "string_quartet": {"valid": 2}}
    assert summary["valid_pieces"] == ["b/y"]
    assert summary["hours"] == round(4.0 / 3600, 2)


# ------------------------------------------------------------- tune collections

TWO_TUNES_ABC = """X:1
T:First
M:4/4
L:1/4
K:C
CDEF|G2G2|]

X:7
T:Second
M:6/8
L:1/8
K:G
GAB c2B|A3 G3|]
"""


def test_tune_collections_keep_the_out_of_corpus_set_apart() -> None:
    essen = [name for name, _ in tunes.tune_collection_files("essen")]
    oneill = [name for name, _ in tunes.tune_collection_files("oneills1850")]
    assert len(essen) == 26 and all(name.startswith("essenFolksong/") for name in essen)
    assert "essenFolksong/irl" not in essen  # Irish tunes: they may be O'Neill's
    assert not any(name.startswith("essenFolksong/test") for name in essen)
    assert len(oneill) == 33 and "oneills1850/1556-1576" not in oneill  # inside 1556-1624
    assert tunes.OUT_OF_CORPUS_COLLECTION not in tunes.TRAINING_COLLECTIONS
    assert {tunes.tune_split(f"oneills1850/0001-0050#{i}", "oneills1850") for i in range(50)} == {"test"}
    essen_splits = Counter(tunes.tune_split(f"essenFolksong/erk10#{i}", "essen") for i in range(1000))
    assert set(essen_splits) == {"train", "valid"} and 60 < essen_splits["valid"] < 140
    with pytest.raises(ValueError, match="unknown tune collection"):
        tunes.tune_collection_files("nope")


def test_each_tune_of_an_abc_file_is_a_work(tmp_path: Path) -> None:
    path = tmp_path / "two.abc"
    path.write_text(TWO_TUNES_ABC)
    name, found, error = tunes._extract_tunes_task(("folk/two", str(path)))
    assert name == "folk/two" and error == ""
    assert [tune for tune, _ in found] == ["folk/two#1", "folk/two#7"]
    first = found[0][1].notes()
    assert [n.pitch for n in first] == [60, 62, 64, 65, 67, 67]
    assert [n.start for n in first] == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]  # quarter = 120: every tune starts at 0
    second = found[1][1].notes()
    assert second[0].pitch == 67 and second[0].start == 0.0 and len(second) == 7
    assert not found[0][1].has_dynamics
    missing = tunes._extract_tunes_task(("folk/none", str(tmp_path / "none.abc")))
    assert missing[1] is None and missing[2]
