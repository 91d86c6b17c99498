"""Real short clips end to end, without Ray: spoken digits from espeak-ng (examples/spoken_digits.py),
class folders split by voice with --group, a store built from the WAV files, and the queued recipe
of cnn2d.yaml trained on whole words: validated on voices it never heard, it must be far above chance.
The full search and report on the default set are measured in docs/benchmarks/short-clips.md."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from examples.spoken_digits import make_spoken_digits
from features.extract import build_stores
from features.layouts import DataOptions, open_dataset
from features.store import FeatureStore
from search.space_file import SPACES_DIR
from training import TrialConfig, fit

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
VOICE = r"_([^_]+)_"


def recipe(segment_seconds: float) -> TrialConfig:
    """cnn2d.yaml's queued recipe (its first trial), with fewer epochs."""
    raw = yaml.safe_load((SPACES_DIR / "cnn2d.yaml").read_text())
    first = raw["search"]["first_trials"][0]
    config: dict = {"features": {"kind": "mel", "n_bins": 64}, "model": {"arch": "cnn2d", "params": {}}}
    for name, value in first.items():
        section, *key = name.split(".")
        if section == "model":
            config["model"]["params"][key[-1]] = value
        elif section == "features":
            config["features"][key[-1]] = value
        elif section != "label":
            config.setdefault(section, {})[key[-1]] = value
    config["training"].update(segment_seconds=segment_seconds, max_epochs=12, batch_size=32, segments_per_clip=2)
    return TrialConfig.from_dict(config)


def test_digits_are_learned_on_voices_never_heard(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    make_spoken_digits(root, voices=8, takes=4, seed=0)  # 320 clips of 0.3-1 s
    dataset = open_dataset(root, DataOptions(group=VOICE))
    voices = {split: {re.search(VOICE, c.path.name)[1] for c in dataset.splits[split]} for split in dataset.splits}
    assert all(len(v) >= 2 for v in voices.values()) and not voices["train"] & (voices["valid"] | voices["test"])
    config = recipe(segment_seconds=3.0)  # longer than every word: each is a segment of its own
    (path,) = build_stores(dataset, [config.features], tmp_path / "stores", workers=1).values()
    torch.manual_seed(0)
    result = fit(config, FeatureStore(path).load_fit_data(), device="cpu")
    best = max(metrics.valid_clip_acc for metrics in result.history)
    assert best > 0.75, [round(m.valid_clip_acc, 2) for m in result.history]  # chance: 0.1
