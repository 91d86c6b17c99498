"""Clip durations against the segment lengths a search may choose, before any feature is built:
a clip shorter than a segment is padded (training.segments), which is harmless for a few clips and
useless when every clip is much shorter than every segment (spoken words against 3 s segments)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import librosa
import soundfile
from tqdm import tqdm

from common.errors import UserError
from features.dataset import Clip, Dataset


def check_segment_seconds(dataset: Dataset, segment_seconds: list[float]) -> None:
    """Refuse segment choices longer than every train and valid clip (the test split is not read);
    otherwise say how many clips are shorter than each choice and what happens to them."""
    durations = [d for clip in (*dataset.splits["train"], *dataset.splits["valid"]) if (d := duration(clip.path))]
    if not durations:
        return  # nothing decodable: extraction skips and reports those files
    longest, shortest = max(durations), min(segment_seconds)
    if longest < shortest:
        raise UserError(
            f"training.segment_seconds: {shortest:g} (the shortest choice) is longer than every clip of "
            f"{dataset.root} (the longest lasts {longest:.2f} s): every segment would be mostly padding; "
            f"choose segment_seconds of at most {longest:.2f}"
        )
    counts = [(seconds, sum(d < seconds for d in durations)) for seconds in sorted(set(segment_seconds))]
    if any(count for _, count in counts):
        shorter = ", ".join(f"{count} shorter than {seconds:g} s" for seconds, count in counts)
        tqdm.write(
            f"data: of {len(durations)} train and valid clips, {shorter} (the shortest lasts {min(durations):.2f} s): "
            "such a clip is padded to a segment with the training mean, so a segment holds all of it"
        )


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
