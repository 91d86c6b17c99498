"""Tiny datasets in GTZAN's layout, made by the tests themselves (no GTZAN on any machine here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

RATE = 22050


def write_tone_clip(path: Path, seconds: float, pitch_hz: float, seed: int, rate: int = RATE) -> None:
    """A noisy tone: cheap audio whose spectrum depends on its class."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.4 * np.sin(2 * np.pi * pitch_hz * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.astype(np.float32), rate, subtype="PCM_16")


def make_layout(
    root: Path,
    genres: tuple[str, ...] = ("blues", "rock", "ska"),
    per_split: tuple[int, int, int] = (3, 2, 2),
    seconds: float = 2.0,
    split_lists: bool = True,
) -> dict[str, list[str]]:
    """Write clips and (optionally) split lists; returns the listed names per split."""
    listed: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    index = 0
    for label, genre in enumerate(genres):
        for split, count in zip(listed, per_split):
            for _ in range(count):
                name = f"{genre}/{genre}.{index:05d}.wav"
                write_tone_clip(root / name, seconds, 220.0 * (label + 1), seed=index)
                listed[split].append(name)
                index += 1
    if split_lists:
        for split, names in listed.items():
            (root / f"{split}_filtered.txt").write_text("\n".join(names) + "\n")
    return listed


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_layout(root)
    return root
