"""examples/spoken_digits.py: the layout `--group` relies on, byte-for-byte determinism, the voice check and
the one-line error without espeak-ng. A tiny set (3 voices x 1 take, 30 clips) takes about a second."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from examples import spoken_digits
from examples.spoken_digits import WORDS, EspeakMissing, make_spoken_digits

SCRIPT = Path(spoken_digits.__file__)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
NAME = re.compile(r"(\d)_([a-z0-9-]+)_(\d+)\.wav")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, float]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("digits") / "set"
    return out, make_spoken_digits(out, voices=3, takes=1, seed=0)


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@needs_espeak
def test_layout_names_and_audio(built: tuple[Path, dict[Path, float]]) -> None:
    out, durations = built
    assert sorted(p.name for p in out.iterdir()) == sorted(WORDS)
    wavs = sorted(path for path in out.rglob("*") if path.is_file())
    assert len(wavs) == 30 and sorted(durations) == wavs
    voices = set()
    for path in wavs:
        digit, voice, take = NAME.fullmatch(path.name).groups()
        assert path.parent.name == WORDS[int(digit)] and take == "0"
        assert re.search(spoken_digits.GROUP_REGEX, path.name).group(1) == voice  # what --group will find
        voices.add(voice)
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert 0.15 < info.duration < 2.0 and info.duration == pytest.approx(durations[path])
        audio, _ = soundfile.read(path)
        assert 0.02 < abs(audio).max() < 0.95  # speech, not clipped
        assert (audio[-500:] == 0).mean() < 0.5  # the trailing pause has a noise floor, not espeak-ng's zeros
    assert len(voices) == 3


@needs_espeak
def test_the_script_rebuilds_the_same_bytes_and_a_smaller_build_is_a_subset(
    built: tuple[Path, dict[Path, float]], tmp_path: Path
) -> None:
    out, _ = built
    again = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "again"), "--voices", "3", "--takes", "1", "--seed", "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "30 clips, 3 voices, 10 classes" in again.stdout
    assert files(tmp_path / "again") == files(out)
    make_spoken_digits(tmp_path / "fewer", voices=2, takes=1, seed=0)
    fewer = files(tmp_path / "fewer")
    assert len(fewer) == 20 and fewer.items() <= files(out).items()
    make_spoken_digits(tmp_path / "other", voices=3, takes=1, seed=1)
    assert files(tmp_path / "other").items().isdisjoint(files(out).items())


@needs_espeak
def test_refuses_a_non_empty_folder_and_bad_counts(built: tuple[Path, dict[Path, float]], tmp_path: Path) -> None:
    out, _ = built
    with pytest.raises(FileExistsError, match="not empty"):
        make_spoken_digits(out, voices=1, takes=1)
    with pytest.raises(ValueError, match="voices must be 1 to 32"):
        make_spoken_digits(tmp_path / "x", voices=33)


@needs_espeak
def test_a_variant_espeak_ignores_or_an_unknown_accent_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # espeak-ng exits 0 and speaks the plain accent for a variant it does not know (or, in 1.51, any
    # variant after "en-gb"): two "speakers" would be one.
    monkeypatch.setitem(spoken_digits.VARIANTS, "gb", (("nosuch", "Annie"), ("m1", "klatt")))
    with pytest.raises(RuntimeError, match=r"'en\+nosuch' sounds exactly like 'en': its variant is ignored"):
        spoken_digits.check_voices(shutil.which("espeak-ng"), ["gb-nosuch"], tmp_path)
    monkeypatch.setitem(spoken_digits.ACCENTS, "gb", "zz")
    with pytest.raises(RuntimeError, match="espeak-ng voice 'zz' failed on 'seven': .*does not exist"):
        spoken_digits.check_voices(shutil.which("espeak-ng"), ["gb-m1"], tmp_path)


def test_without_espeak_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EspeakMissing, match=r"install the Debian package \(apt-get install espeak-ng\)"):
        make_spoken_digits(tmp_path / "out")
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "spoken_digits: espeak-ng is not on PATH: install the Debian package (apt-get install espeak-ng)"
    ]
    assert not (tmp_path / "out").exists()


def test_a_tempo_per_voice_keeps_each_voice_near_its_own_tempo() -> None:
    def speeds(voice: str, per_voice: bool) -> list[int]:
        clips = [spoken_digits.Clip(digit, voice, take) for digit in range(10) for take in range(5)]
        return [spoken_digits.take_settings(0, clip, per_voice)[0] for clip in clips]

    for voice in ("gb-f1", "rp-m7", "us-klatt2"):
        own = speeds(voice, per_voice=True)
        assert max(own) / min(own) <= 1.08 / 0.92 + 0.01  # one tempo, within 8%
        assert max(speeds(voice, per_voice=False)) / min(speeds(voice, per_voice=False)) > 1.5  # any tempo per take
    assert len({round(sum(speeds(v, True)) / 50, -1) for v in ("gb-f1", "rp-m7", "us-klatt2")}) == 3
