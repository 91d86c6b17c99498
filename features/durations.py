"""Clip durations against the segment lengths a search may choose, before any feature is built:
a clip shorter than a segment is a segment of its own, taken whole (training.segments), and a
search whose every segment choice is longer than every clip is told that the choice changes nothing."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import soundfile
from tqdm import tqdm

from features.dataset import Clip, Dataset


def check_segment_seconds(dataset: Dataset, segment_seconds: list[float]) -> None:
    """Say how many train and valid clips (the test split is not read) are shorter than each
    segment choice: each such clip is a segment of its own, taken whole (training.segments).
    When every choice is longer than every clip, the choices change nothing: say so, with a
    length that most clips exceed, for a search that should crop."""
    durations = [d for clip in (*dataset.splits["train"], *dataset.splits["valid"]) if (d := duration(clip.path))]
    counts = [(seconds, sum(d < seconds for d in durations)) for seconds in sorted(set(segment_seconds))]
    if not any(count for _, count in counts):
        return  # nothing decodable (extraction skips and reports those files), or no clip is short
    shorter = ", ".join(f"{count} shorter than {seconds:g} s" for seconds, count in counts)
    line = (
        f"data: of {len(durations)} train and valid clips, {shorter} (median {np.median(durations):.2f} s, "
        f"shortest {min(durations):.2f} s): a clip shorter than a segment is one segment, taken whole"
    )
    if max(durations) < min(segment_seconds):
        most = float(np.quantile(durations, 0.1))
        line += (
            f"; every training.segment_seconds choice is longer than every clip (the longest lasts "
            f"{max(durations):.2f} s), so it changes nothing here: to crop, choose at most {most:.2f} "
            "(9 clips in 10 are longer)"
        )
    tqdm.write(line)


def expected_frames(clips: Sequence[Clip], sample_rate: int, hop_length: int) -> list[int]:
    """Each clip's feature frames from its duration in the file's header (centred frames, as
    librosa's: 1 + samples // hop), an unreadable clip counted at the others' mean: the sizes of
    stores to come, from every clip's length rather than from the first clips seen."""
    seconds = [duration(clip.path) for clip in clips]
    known = [s for s in seconds if s is not None]
    mean = sum(known) / len(known) if known else 0.0
    return [1 + round((mean if s is None else s) * sample_rate) // hop_length for s in seconds]


def duration(path: Path) -> float | None:
    """Seconds of audio from the file's header (soundfile, else librosa); None if unreadable."""
    try:
        return soundfile.info(path).duration
    except (RuntimeError, soundfile.LibsndfileError):
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's audioread fallback warns about itself
            return librosa.get_duration(path=path)
    except Exception:  # noqa: BLE001 - any decoder failure: extraction skips and reports the file
        return None
