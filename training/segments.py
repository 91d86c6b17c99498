"""Fixed-length segments cut from whole clips held on the device: random crops for training,
overlapping segments covering each clip for evaluation. A batch is one gather by index
arithmetic (clip index, start frame + arange), with no file reads and no worker processes.

On a GPU the clips stay in its memory when they fit in `DEVICE_DATA_SHARE` of what is free;
otherwise they stay in the host's memory, and each batch is gathered there and copied over through
pinned memory without blocking (`to_device`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from features.store import STD_FLOOR, SplitArrays, TrainCopies

# Share of a GPU's free memory one run's clips may take when it starts: the rest is for the
# activations and for the other trials sharing the GPU (each holds its own copy of its data).
DEVICE_DATA_SHARE = 0.5


@dataclass(frozen=True)
class DeviceSplit:
    """A normalised split, its clips' frames one after another (as `SplitArrays` holds them), so
    a batch is one gather. The frames, offsets and labels live together: on the device batches go
    to, or in the host's memory when they do not fit there."""

    frames: torch.Tensor  # (frames, bins) float32; a clip shorter than a segment is followed by 0s up to one
    offsets: torch.Tensor  # (rows,) int64 beside the frames: each row's first frame in `frames`
    lengths: np.ndarray  # (rows,) int64 valid frames, on the CPU where segment plans are made
    labels: torch.Tensor  # (rows,) int64 beside the frames
    # Training with augmented copies: row i lists clip i's row and its copies' rows.
    variants: np.ndarray | None = None  # (clips, 1 + copies) int64
    batch_device: torch.device | None = None  # where `gather` delivers batches; None: beside the frames

    def __len__(self) -> int:
        """Clips, not counting augmented copies."""
        return len(self.lengths) if self.variants is None else len(self.variants)

    @property
    def n_bins(self) -> int:
        return self.frames.shape[1]

    @property
    def device(self) -> torch.device:
        """Where batches go (the model's device)."""
        return self.frames.device if self.batch_device is None else self.batch_device


def data_home(device: torch.device, nbytes: int) -> torch.device:
    """Where `nbytes` of clips for a run on `device` live: on `device` when it is not a GPU or they
    fit in `DEVICE_DATA_SHARE` of its free memory, else on the host."""
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if nbytes <= DEVICE_DATA_SHARE * free else torch.device("cpu")


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`. From the host to a GPU the copy goes through pinned memory without
    blocking: a plain copy makes the host wait until the GPU has finished all its queued work."""
    if tensor.device.type == "cpu" and device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def prepared_bytes(split: SplitArrays, min_frames: int) -> int:
    """Bytes of `split` once prepared: float32 frames, each clip padded to `min_frames`."""
    return 4 * split.n_bins * int(np.maximum(split.lengths.astype(np.int64), min_frames).sum())


def prepare_split(
    split: SplitArrays,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
    home: torch.device | None = None,
) -> DeviceSplit:
    """Normalise `split` per bin with the train statistics and keep it at `home` (default: on
    `device` when it fits, see `data_home`), delivering batches to `device`.

    A clip shorter than `min_frames` (a segment) is followed by padding up to that length, so it
    can still be cropped. The padding is 0 after normalisation, i.e. the training mean of each
    bin: a neutral "average frame" whatever the feature kind, rather than raw zeros, which would
    normalise to -mean/std, a strong artificial pattern (and for dB features not even silence).
    """
    home = data_home(device, prepared_bytes(split, min_frames)) if home is None else home
    spans = np.maximum(split.lengths.astype(np.int64), min_frames)
    offsets = np.cumsum(spans) - spans
    values = torch.from_numpy(split.features).to(home).float()  # (frames, bins)
    values.sub_(torch.as_tensor(mean, dtype=torch.float32, device=home))
    values.div_(torch.as_tensor(std, dtype=torch.float32, device=home).clamp_min(STD_FLOOR))
    if (spans != split.lengths).any():  # short clips: place every clip's frames after its padded predecessors
        destination = np.repeat(offsets - split.offsets, split.lengths) + np.arange(len(split.features))
        padded = values.new_zeros((int(spans.sum()), split.n_bins))
        values = padded.index_copy_(0, torch.as_tensor(destination, device=home), values)
    return DeviceSplit(
        frames=values,
        offsets=torch.as_tensor(offsets, device=home),
        lengths=np.asarray(split.lengths, dtype=np.int64),
        labels=torch.as_tensor(split.labels, dtype=torch.int64, device=home),
        batch_device=device,
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
        batch_device=originals.batch_device,
    )


def prepare_train(
    split: SplitArrays,
    copies: TrainCopies | None,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
) -> DeviceSplit:
    """The train split for `device`, with its augmented copies when the store has them, all kept
    in one place (`data_home`)."""
    if copies is None or len(copies) == 0:
        return prepare_split(split, mean, std, device, min_frames)
    home = data_home(device, prepared_bytes(split, min_frames) + prepared_bytes(copies.arrays, min_frames))
    originals = prepare_split(split, mean, std, device, min_frames, home)
    return with_copies(originals, prepare_split(copies.arrays, mean, std, device, min_frames, home), copies.source)


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
    """The segments as a (batch, bins, frames) batch on `split.device`; `clips` and `starts` are
    beside the frames.

    `unfold` views every window of `segment_frames` frames without copying; indexing it by each
    segment's first frame copies each segment as one contiguous block, then into the models' layout.
    """
    windows = split.frames.unfold(0, segment_frames, 1)  # (windows, bins, segment_frames)
    return to_device(windows[split.offsets[clips] + starts].contiguous(), split.device)
