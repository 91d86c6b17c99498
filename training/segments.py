"""Fixed-length segments cut from whole clips held on the device: random crops for training,
overlapping segments covering each clip for evaluation. A batch is one gather by index
arithmetic (clip index, start frame + arange), with no file reads and no worker processes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from features.store import SplitArrays

# Floor on a bin's standard deviation: a constant bin (silence in every training clip) would
# otherwise divide by zero and surface as a NaN "divergence" at the first step.
MIN_STD = 1e-6


@dataclass(frozen=True)
class DeviceSplit:
    """A normalised split on the device, in the models' layout, so a batch is one gather."""

    frames: torch.Tensor  # (clips, bins, max_frames) float32; 0 past each clip's length
    lengths: np.ndarray  # (clips,) int64 valid frames, on the CPU where segment plans are made
    labels: torch.Tensor  # (clips,) int64 on the device

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def n_bins(self) -> int:
        return self.frames.shape[1]


def prepare_split(
    split: SplitArrays, mean: np.ndarray, std: np.ndarray, device: torch.device, min_frames: int
) -> DeviceSplit:
    """Normalise `split` per bin with the train statistics and move it to `device`.

    The padding past each clip's end (and up to `min_frames`, so a clip shorter than a segment can
    still be cropped) is 0 after normalisation, i.e. the training mean of each bin: a neutral
    "average frame" whatever the feature kind, rather than raw zeros, which would normalise to
    -mean/std, a strong artificial pattern (and for dB features not even silence).
    """
    features = torch.from_numpy(np.ascontiguousarray(split.features)).to(device)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)[:, None]
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device).clamp_min(MIN_STD)[:, None]
    normalised = (features.float() - mean_t) / std_t  # (clips, bins, frames)
    del features
    n_frames = normalised.shape[2]
    lengths = torch.as_tensor(split.lengths, dtype=torch.int64, device=device)
    padding = torch.arange(n_frames, device=device)[None, :] >= lengths[:, None]
    normalised.masked_fill_(padding[:, None, :], 0.0)
    if n_frames < min_frames:
        normalised = torch.nn.functional.pad(normalised, (0, min_frames - n_frames))
    return DeviceSplit(
        frames=normalised.contiguous(),
        lengths=np.asarray(split.lengths, dtype=np.int64),
        labels=torch.as_tensor(split.labels, dtype=torch.int64, device=device),
    )


def random_crops(
    lengths: np.ndarray, segment_frames: int, per_clip: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_clip` random segments of each clip, shuffled: (clip index, start frame), on the CPU.

    A start is uniform over the positions that keep the segment inside the clip's valid frames;
    a clip shorter than a segment starts at 0 and the rest of the segment is padding. Drawing on
    the CPU with one generator makes the crops the same on every device.
    """
    clips = torch.arange(len(lengths)).repeat(per_clip)
    room = torch.as_tensor(np.maximum(lengths - segment_frames, 0))[clips] + 1
    starts = (torch.rand(len(clips), generator=generator, dtype=torch.float64) * room).long()
    order = torch.randperm(len(clips), generator=generator)
    return clips[order], starts[order]


def eval_segments(lengths: np.ndarray, segment_frames: int, overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """Segments covering each whole clip: (clip index, start frame), clip by clip.

    Consecutive segments share `overlap` of their frames; the last one is aligned to the clip's
    end so no frame is left out; a clip shorter than a segment gives one (padded) segment.
    """
    hop = max(1, round(segment_frames * (1.0 - overlap)))
    clips, starts = [], []
    for index, length in enumerate(lengths):
        last = max(int(length) - segment_frames, 0)
        clip_starts = list(range(0, last + 1, hop))
        if clip_starts[-1] != last:
            clip_starts.append(last)
        clips += [index] * len(clip_starts)
        starts += clip_starts
    return np.asarray(clips, dtype=np.int64), np.asarray(starts, dtype=np.int64)


def gather(split: DeviceSplit, clips: torch.Tensor, starts: torch.Tensor, segment_frames: int) -> torch.Tensor:
    """The segments as a (batch, bins, frames) batch; `clips` and `starts` are on the device.

    `unfold` views every window of each clip without copying; indexing it by (clip, start) copies
    each segment's bins as contiguous runs, straight into the models' layout (4x faster on the CPU
    than gathering frame indices and transposing).
    """
    return split.frames.unfold(2, segment_frames, 1)[clips, :, starts]
