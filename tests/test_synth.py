"""The synthetic dataset: GTZAN's layout, sound splits, reproducible bytes, distinct genres, safe writes."""

from __future__ import annotations

import errno
import functools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from common.errors import USER_ERROR_EXIT_CODE, UserError
from features import locate, synth, synthetic
from features.dataset import load_dataset
from features.synthetic import generate

CLIPS = 3  # the smallest count with every split non-empty
SECONDS = 2.0
SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny set shared by the read-only tests (generation is the slow part)."""
    out = tmp_path_factory.mktemp("synth") / "data"
    return synthetic.generate_dataset(out, clips_per_genre=CLIPS, seconds=SECONDS, seed=7, workers=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lists(root: Path) -> dict[str, list[str]]:
    return {split: (root / f"{split}_filtered.txt").read_text().splitlines() for split in SPLITS}


def test_layout_is_gtzans(dataset: Path):
    expected = {f"{g}/{g}.{i:05d}.wav" for g in synthetic.GENRES for i in range(CLIPS)}
    wavs = {str(p.relative_to(dataset)) for p in dataset.rglob("*.wav")}
    assert wavs == expected
    extras = {"train_filtered.txt", "valid_filtered.txt", "test_filtered.txt", "SYNTHETIC.json"}
    assert {p.name for p in dataset.iterdir() if p.is_file()} == extras
    for name in ("classical/classical.00000.wav", "reggae/reggae.00002.wav"):
        info = soundfile.info(dataset / name)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.frames == round(SECONDS * 22050)
    assert not [p for p in dataset.parent.iterdir() if "partial" in p.name]  # the temporary folder is gone


def test_marker_says_synthetic(dataset: Path):
    marker = json.loads((dataset / "SYNTHETIC.json").read_text())
    assert marker == {
        "generator": "genre-search synthetic",
        "version": 1,
        "seed": 7,
        "clips_per_genre": CLIPS,
        "seconds": SECONDS,
        "sample_rate": 22050,
        "genres": list(synthetic.GENRES),
    }


def test_split_lists_cover_every_clip_once(dataset: Path):
    lists = _lists(dataset)
    listed = [name for names in lists.values() for name in names]
    assert len(listed) == len(set(listed)) == CLIPS * len(synthetic.GENRES)
    assert set(listed) == {str(p.relative_to(dataset)) for p in dataset.rglob("*.wav")}
    for genre in synthetic.GENRES:
        for split, names in lists.items():
            assert any(name.startswith(f"{genre}/") for name in names), f"{genre} missing from {split}"


def test_loads_as_a_dataset(dataset: Path):
    loaded = load_dataset(dataset)
    assert loaded.synthetic and loaded.classes == tuple(sorted(synthetic.GENRES)) and not loaded.missing


@pytest.mark.parametrize("n", [40, 100, 1000])
def test_split_proportions_follow_the_real_split(n: int):
    sizes = synthetic.split_sizes(n)
    assert sum(sizes) == n
    for size, fraction in zip(sizes, synthetic.SPLIT_FRACTIONS.values()):
        assert abs(size - n * fraction) <= 1.5


def test_small_splits_are_never_empty():
    for n in range(3, 12):
        assert min(synthetic.split_sizes(n)) >= 1 and sum(synthetic.split_sizes(n)) == n
    assert synthetic.split_sizes(1) == (1, 0, 0)
    assert sum(synthetic.split_sizes(2)) == 2


def test_split_assignment_is_seeded():
    assert synthetic.assign_splits(20, seed=3) == synthetic.assign_splits(20, seed=3)
    assert synthetic.assign_splits(20, seed=3) != synthetic.assign_splits(20, seed=4)


def test_same_seed_same_bytes_whatever_the_workers(dataset: Path, tmp_path: Path):
    out = tmp_path / "again"
    out.mkdir()  # an existing empty folder is fine
    synthetic.generate_dataset(out, clips_per_genre=CLIPS, seconds=SECONDS, seed=7, workers=2)
    assert _files(out) == _files(dataset)


def test_different_seeds_differ():
    a = synthetic.synthesize_clip("jazz", 1.0, (0, 4, 0))
    b = synthetic.synthesize_clip("jazz", 1.0, (1, 4, 0))
    assert not np.array_equal(a, b)


def test_clips_are_mono_float32_in_range():
    for seed, genre in enumerate(synthetic.GENRES):
        audio = synthetic.synthesize_clip(genre, 1.5, seed)
        assert audio.dtype == np.float32 and audio.shape == (round(1.5 * 22050),)
        assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
        assert np.abs(audio).max() > 0.1  # not silence


def _spectrum(genre: str) -> np.ndarray:
    """Average log power spectrum over a few clips: the genre, not one clip's accident."""
    clips = [synthetic.synthesize_clip(genre, 1.5, (0, synthetic.GENRES.index(genre), i)) for i in range(3)]
    frames = np.concatenate([c[: c.size // 1024 * 1024].reshape(-1, 1024) for c in clips])
    return np.log10(1e-8 + np.mean(np.abs(np.fft.rfft(frames * np.hanning(1024))) ** 2, axis=0))


def test_genres_differ():
    spectra = {genre: _spectrum(genre) for genre in ("classical", "metal", "hiphop")}
    for a, b in [("classical", "metal"), ("classical", "hiphop"), ("metal", "hiphop")]:
        assert np.mean(np.abs(spectra[a] - spectra[b])) > 0.1, (a, b)


def test_refuses_a_non_empty_out(tmp_path: Path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder"):
        synthetic.generate_dataset(out, clips_per_genre=1, seconds=0.5, workers=1)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def fail(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "_write_clip", fail)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate_dataset(tmp_path / "data", clips_per_genre=1, seconds=0.5, workers=1)
    assert list(tmp_path.iterdir()) == []


_real_disk_usage = shutil.disk_usage  # the tests below replace it


def _disk(free: int):
    """What `shutil.disk_usage` says about a disk with `free` bytes left."""
    return _real_disk_usage(".")._replace(free=free)


def test_too_little_disk_space_is_one_line_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    needed = synthetic.bytes_needed(2, 30.0)
    assert needed > 8 * 2 * 30 * 22050 * 2  # every sample of every clip, at least
    monkeypatch.setattr(shutil, "disk_usage", lambda path: _disk(needed - 1))
    out = tmp_path / "data"
    with pytest.raises(UserError) as error:
        synthetic.generate_dataset(out, clips_per_genre=2, seconds=30.0, workers=1)
    message = str(error.value)
    assert message.startswith(f"not enough disk space for the synthetic set {out}: it needs ")
    assert f"{needed / 1e6:.1f} MB" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def _fail_after_first_clip(monkeypatch: pytest.MonkeyPatch, error: Exception, free_then: int) -> None:
    """Writing a clip raises `error` after the first one, and the disk then has `free_then` bytes."""
    write = soundfile.write
    written: list[str] = []
    monkeypatch.setattr(shutil, "disk_usage", lambda path: _disk(10**9 if not written else free_then))

    def write_until_full(path, *args, **kwargs):
        if written:
            raise error
        written.append(str(path))
        write(path, *args, **kwargs)

    monkeypatch.setattr(soundfile, "write", write_until_full)


def _assert_disk_full_error(error: UserError, out: Path) -> None:
    message = str(error)
    assert message.startswith(f"the disk filled up while writing the synthetic set {out}: it needs ")
    assert "partial set was removed" in message and "\n" not in message
    assert list(out.parent.iterdir()) == []


def test_disk_filling_up_while_writing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fail_after_first_clip(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), free_then=0)
    out = tmp_path / "data"
    with pytest.raises(UserError) as error:
        synthetic.generate_dataset(out, clips_per_genre=2, seconds=0.5, workers=1)
    _assert_disk_full_error(error.value, out)


def test_libsndfile_system_error_is_a_full_disk_only_without_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """libsndfile says only "System error" when the disk is full: that is reported as a full disk
    when no room is left, and passed on as it is otherwise."""
    system_error = soundfile.LibsndfileError(2, "Error writing: ")
    _fail_after_first_clip(monkeypatch, system_error, free_then=0)
    out = tmp_path / "data"
    with pytest.raises(UserError) as error:
        synthetic.generate_dataset(out, clips_per_genre=2, seconds=0.5, workers=1)
    _assert_disk_full_error(error.value, out)
    _fail_after_first_clip(monkeypatch, system_error, free_then=10**9)
    with pytest.raises(soundfile.LibsndfileError):
        synthetic.generate_dataset(out, clips_per_genre=2, seconds=0.5, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"clips_per_genre": 0}, {"seconds": 0.0}, {"seed": -1}, {"workers": 0}],
)
def test_bad_arguments_are_user_errors(tmp_path: Path, kwargs: dict):
    with pytest.raises(UserError):
        synthetic.generate_dataset(tmp_path / "data", **({"clips_per_genre": 1, "seconds": 0.5} | kwargs))
    assert list(tmp_path.iterdir()) == []


def test_unknown_genre_is_a_user_error():
    with pytest.raises(UserError, match="unknown genre"):
        synthetic.synthesize_clip("polka", 1.0, 0)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "cli"
    synth.main(["--out", str(out), "--clips-per-genre", "1", "--seconds", "0.5", "--workers", "1"])
    assert "wrote 8 synthetic clips" in capsys.readouterr().out
    assert len(list(out.rglob("*.wav"))) == 8
    with pytest.raises(SystemExit) as exit_info:
        synth.main(["--out", str(out)])  # not empty now
    assert exit_info.value.code == USER_ERROR_EXIT_CODE
    assert capsys.readouterr().err.startswith("error: ")


# A first run on the default data, with a tiny default set: it logs each generation it starts and
# holds it until the test creates the file `go`, so a second run surely arrives meanwhile.
FIRST_RUN = """
import sys, time
from pathlib import Path
from features import locate, synthetic

log, go = Path(sys.argv[1]), Path(sys.argv[2])
synthetic.DEFAULT_CLIPS_PER_GENRE, synthetic.DEFAULT_SECONDS = 3, 0.5
generate = synthetic.generate_dataset

def held_generation(out):
    with log.open("a") as file:
        file.write("generation\\n")
    while not go.exists():
        time.sleep(0.05)
    return generate(out, clips_per_genre=3, seconds=0.5, workers=1)

synthetic.generate_dataset = held_generation
print("root", locate.synthetic_default())
"""


class _Run:
    """A first run in its own process, its output lines read by a thread so waits can time out."""

    def __init__(self, tmp_path: Path, name: str):
        env = os.environ | {"GENRE_SEARCH_CACHE": str(tmp_path / "cache")}
        args = [sys.executable, "-u", "-c", FIRST_RUN, str(tmp_path / "generations.log"), str(tmp_path / "go")]
        errors = (tmp_path / f"{name}.stderr").open("w")
        repo = Path(__file__).resolve().parents[1]
        self.process = subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            if text in line:
                return line.strip()


@pytest.fixture
def runs(tmp_path: Path):
    """Start first runs with `runs(name)`; any still running when the test ends is killed."""
    started: list[_Run] = []
    yield lambda name: started.append(_Run(tmp_path, name)) or started[-1]
    for run in started:
        run.process.kill()
        run.process.wait()


def test_two_first_runs_at_once_generate_the_default_set_once(tmp_path: Path, runs):
    first = runs("first")
    first.wait_for("generating the built-in synthetic set once into")
    second = runs("second")
    waiting = f"another run is generating the built-in synthetic set into {tmp_path / 'cache'}"
    assert second.wait_for("synthetic set").startswith(waiting)
    (tmp_path / "go").touch()
    roots = [run.wait_for("root ") for run in (first, second)]
    assert [run.process.wait(timeout=60) for run in (first, second)] == [0, 0]
    assert roots[0] == roots[1] and (tmp_path / "generations.log").read_text() == "generation\n"
    root = Path(roots[0].removeprefix("root "))
    assert load_dataset(root).synthetic
    fresh = synthetic.generate_dataset(tmp_path / "fresh", clips_per_genre=3, seconds=0.5, workers=1)
    assert _files(root) == _files(fresh)
    assert not [p for p in root.parent.iterdir() if "partial" in p.name]


def test_a_killed_generations_partial_folder_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(synthetic, "DEFAULT_CLIPS_PER_GENRE", 1)
    monkeypatch.setattr(synthetic, "DEFAULT_SECONDS", 0.5)
    monkeypatch.setattr(
        synthetic,
        "generate_dataset",
        functools.partial(synthetic.generate_dataset, clips_per_genre=1, seconds=0.5, workers=1),
    )
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    name = "synthetic-seed0-1x0.5s"
    killed = tmp_path / f".{name}.partial-{ended.stdout.strip()}-0badc0de"  # its process has ended
    older = tmp_path / f".{name}.partial-1a2b3c4d"  # named as earlier versions named them
    running = tmp_path / f".{name}.partial-{os.getpid()}-feedbeef"  # a generation still going on
    for partial in (killed, older, running):
        (partial / "jazz").mkdir(parents=True)
        (partial / "jazz/jazz.00000.wav").write_bytes(b"RIFF")
    assert locate.synthetic_default() == tmp_path / name
    assert not killed.exists() and not older.exists() and running.exists()
