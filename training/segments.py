"""Fixed-length segments cut from whole clips held on the device: random crops for training,
overlapping segments covering each clip for evaluation. A batch is one gather by index
arithmetic (clip index, start frame + arange), with no file reads and no worker processes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from features.store import STD_FLOOR, SplitArrays, TrainCopies


@dataclass(frozen=True)
class DeviceSplit:
    """A normalised split on the device, its clips' frames one after another (as `SplitArrays`
    holds them), so a batch is one gather."""

    frames: torch.Tensor  # (frames, bins) float32; a clip shorter than a segment is followed by 0s up to one
    offsets: torch.Tensor  # (rows,) int64 on the device: each row's first frame in `frames`
    lengths: np.ndarray  # (rows,) int64 valid frames, on the CPU where segment plans are made
    labels: torch.Tensor  # (rows,) int64 on the device
    # Training with augmented copies: row i lists clip i's row and its copies' rows.
    variants: np.ndarray | None = None  # (clips, 1 + copies) int64

    def __len__(self) -> int:
        """Clips, not counting augmented copies."""
        return len(self.lengths) if self.variants is None else len(self.variants)

    @property
    def n_bins(self) -> int:
        return self.frames.shape[1]


def prepare_split(
    split: SplitArrays, mean: np.ndarray, std: np.ndarray, device: torch.device, min_frames: int
) -> DeviceSplit:
    """Normalise `split` per bin with the train statistics and move it to `device`.

    A clip shorter than `min_frames` (a segment) is followed by padding up to that length, so it
    can still be cropped. The padding is 0 after normalisation, i.e. the training mean of each
    bin: a neutral "average frame" whatever the feature kind, rather than raw zeros, which would
    normalise to -mean/std, a strong artificial pattern (and for dB features not even silence).
    """
    spans = np.maximum(split.lengths.astype(np.int64), min_frames)
    offsets = np.cumsum(spans) - spans
    values = torch.from_numpy(split.features).to(device).float()  # (frames, bins)
    values.sub_(torch.as_tensor(mean, dtype=torch.float32, device=device))
    values.div_(torch.as_tensor(std, dtype=torch.float32, device=device).clamp_min(STD_FLOOR))
    if (spans != split.lengths).any():  # short clips: place every clip's frames after its padded predecessors
        destination = np.repeat(offsets - split.offsets, split.lengths) + np.arange(len(split.features))
        padded = values.new_zeros((int(spans.sum()), split.n_bins))
        values = padded.index_copy_(0, torch.as_tensor(destination, device=device), values)
    return DeviceSplit(
        frames=values,
        offsets=torch.as_tensor(offsets, device=device),
        lengths=np.asarray(split.lengths, dtype=np.int64),
        labels=torch.as_tensor(split.labels, dtype=torch.int64, device=device),
    )


def with_copies(originals: DeviceSplit, copies: DeviceSplit, source: np.ndarray) -> DeviceSplit:
    """One split holding the originals and their augmented copies (copy i made from original
    `source[i]`), with the table of each original's variants; every original has as many copies."""
    per_clip = np.bincount(source, minlength=len(originals))
    if len(set(per_clip.tolist())) != 1:
        raise ValueError(f"augmented copies per training clip differ ({sorted(set(per_clip.tolist()))})")
    copy_rows = np.argsort(source, kind="stable").reshape(len(originals), -1) + len(originals)
    return DeviceSplit(
        frames=torch.cat([originals.frames, copies.frames]),
        offsets=torch.cat([originals.offsets, copies.offsets + len(originals.frames)]),
        lengths=np.concatenate([originals.lengths, copies.lengths]),
        labels=torch.cat([originals.labels, copies.labels]),
        variants=np.column_stack([np.arange(len(originals)), copy_rows]),
    )


def prepare_train(
    split: SplitArrays,
    copies: TrainCopies | None,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
) -> DeviceSplit:
    """The train split on the device, with its augmented copies when the store has them."""
    originals = prepare_split(split, mean, std, device, min_frames)
    if copies is None or len(copies) == 0:
        return originals
    return with_copies(originals, prepare_split(copies.arrays, mean, std, device, min_frames), copies.source)


def random_crops(
    lengths: np.ndarray,
    segment_frames: int,
    per_clip: int,
    generator: torch.Generator,
    variants: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_clip` random segments of each clip, shuffled: (row, start frame), on the CPU.

    With `variants` (a clip's row and its augmented copies' rows), each segment comes from one of
    them chosen at random, so copies add variety without lengthening the epoch. A start is uniform
    over the positions that keep the segment inside the row's valid frames; a clip shorter than a
    segment starts at 0 and the rest of the segment is padding. Drawing on the CPU with one
    generator makes the crops the same on every device.
    """
    clips = torch.arange(len(lengths) if variants is None else len(variants)).repeat(per_clip)
    if variants is not None:
        choice = torch.randint(variants.shape[1], (len(clips),), generator=generator)
        clips = torch.as_tensor(variants)[clips, choice]
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

    `unfold` views every window of `segment_frames` frames without copying; indexing it by each
    segment's first frame copies each segment as one contiguous block, then into the models' layout.
    """
    windows = split.frames.unfold(0, segment_frames, 1)  # (windows, bins, segment_frames)
    return windows[split.offsets[clips] + starts].contiguous()
