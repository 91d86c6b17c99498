"""Clips shorter than a segment: each is a segment of its own (whole clips as the unit), so nothing
but its content tells the classes apart. Classes that differ only in clip length stay at chance;
classes that differ in content, with random lengths, are learned; the few clips shorter than the
network's smallest input are padded with the feature's own silence, the same in every class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features.arrays import FitData, SplitArrays
from features.compute import silence_frame
from features.settings import FeatureSetting
from training import TrialConfig, evaluate_clips, fit
from training.segments import batch_frames, gather, prepare_split, random_crops, segment_lengths

BINS, CLASSES = 16, 4
SETTING = FeatureSetting(n_bins=BINS)  # 43 frames per second
SEGMENT_SECONDS = 1.5  # 65 frames: longer than every clip below
CONFIG = {
    "features": SETTING.to_dict(),
    "model": {"arch": "cnn2d", "params": {"depth": 2, "channels": 8, "dropout": 0.0}},
    "optimizer": {"name": "adam", "lr": 3e-3},
    "schedule": {"name": "none"},
    "training": {"segment_seconds": SEGMENT_SECONDS, "segments_per_clip": 2, "batch_size": 16, "max_epochs": 12},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def clips_of(rng: np.random.Generator, lengths: np.ndarray, labels: np.ndarray, profiles: np.ndarray) -> SplitArrays:
    """Stationary clips: every frame is the clip's class profile plus noise, on a raw log-mel
    scale (silence is 0 there, as for log10(1 + 10 mel))."""
    clips = [
        (2.0 + profiles[label][:, None] + rng.normal(scale=0.7, size=(BINS, length))).astype(np.float16)
        for length, label in zip(lengths, labels)
    ]
    return SplitArrays.of_clips(clips, labels, [f"c{i}" for i in range(len(labels))])


def trained_accuracy(lengths_of, profiles: np.ndarray, per_class: int = 24) -> float:
    """Clip accuracy on 50 new clips per class after training (and validating) on clips whose
    lengths `lengths_of(rng, labels)` gives."""
    rng = np.random.default_rng(0)
    splits = []
    for count in (per_class, per_class // 2, 50):
        labels = np.repeat(np.arange(CLASSES), count)
        splits.append(clips_of(rng, lengths_of(rng, labels), labels, profiles))
    flat = splits[0].features.astype(np.float32)
    data = FitData(splits[0], splits[1], flat.mean(0), flat.std(0), tuple("abcd"), SETTING)
    config = TrialConfig.from_dict(CONFIG)
    model = fit(config, data, device="cpu").model
    frames, shortest = config.segment_frames, config.min_frames
    return evaluate_clips(model, splits[2], data.mean, data.std, frames, 0.0, min_frames=shortest).clip_acc


def test_classes_that_differ_only_in_length_stay_at_chance():
    same = np.zeros((CLASSES, BINS))  # one content for every class
    # Frames (43 per second): 0.33-0.45 s, 0.5-0.7 s, 0.75-1 s, 1-1.4 s, all shorter than a segment.
    # Below ~0.3 s (a dozen frames) a network's own zero padding at the borders of a clip starts to
    # tell its length (docs/data.md); padding the clips to a segment told it at 0.97 accuracy.
    by_class = np.array([[14, 20], [22, 30], [32, 42], [45, 60]])

    def lengths(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
        return np.array([rng.integers(*by_class[label]) for label in labels])

    # 200 test clips, 4 classes: chance is 0.25 (standard deviation 0.031); 0.36 is 3.5 of them above.
    assert trained_accuracy(lengths, same) < 0.36


def test_classes_that_differ_in_content_are_learned_whatever_their_lengths():
    profiles = np.random.default_rng(7).normal(scale=1.0, size=(CLASSES, BINS))

    def lengths(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
        return rng.integers(6, 60, size=len(labels))

    assert trained_accuracy(lengths, profiles) > 0.9


def test_short_clips_are_whole_segments_and_padding_is_silence():
    setting = FeatureSetting(n_bins=BINS, compression="db")  # silence is -100 dB, far from the mean
    silence = silence_frame(setting)
    rng = np.random.default_rng(1)
    lengths = np.array([3, 9, 30, 80])
    split = SplitArrays.of_clips([rng.normal(size=(BINS, n)).astype(np.float16) for n in lengths], [0, 1, 2, 3], "abcd")
    mean, std = np.zeros(BINS, np.float32), np.full(BINS, 10.0, np.float32)
    prepared = prepare_split(split, mean, std, torch.device("cpu"), min_frames=8, silence=silence)
    assert segment_lengths(lengths, 40, 8).tolist() == [8, 9, 30, 40]
    rows, starts = random_crops(lengths, 40, 8, torch.Generator().manual_seed(0), batch_size=4, min_frames=8)
    for first in range(0, len(rows), 4):
        chosen = slice(first, first + 4)
        frames = batch_frames(lengths, rows[chosen], 40, 8)
        batch = gather(prepared, rows[chosen], starts[chosen], frames)
        own = segment_lengths(lengths[rows[chosen].numpy()], 40, 8)
        assert frames == own.min() and bool(
            (starts[chosen] + frames <= torch.as_tensor(np.maximum(lengths, 8))[rows[chosen]]).all()
        )
        for segment, row in zip(batch, rows[chosen].tolist()):
            if lengths[row] < 8:  # only the 3-frame clip: its 5 missing frames are silence, normalised
                padded = segment[:, lengths[row] :]
                torch.testing.assert_close(padded, torch.as_tensor(silence / 10.0)[:, None].expand_as(padded))


def test_evaluation_takes_a_short_clip_whole():
    """A clip shorter than a segment is evaluated as one segment of its own length."""

    class MeanOverTime(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen = [*getattr(self, "seen", []), x.shape[2]]
            return x.mean(dim=2)

    model = MeanOverTime()
    split = SplitArrays.of_clips([np.ones((2, n), np.float16) for n in (5, 12, 100)], [0, 1, 1], "abc")
    stats = np.zeros(2, np.float32), np.ones(2, np.float32)
    result = evaluate_clips(model, split, *stats, segment_frames=40, overlap=0.0, device="cpu", min_frames=4)
    assert sorted(model.seen) == [5, 12, 40] and result.clip_probs.shape == (3, 2)
