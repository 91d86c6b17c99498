"""Fixed-length segments cut from whole clips: random crops for training, overlapping segments
covering each clip for evaluation. A batch is one gather by index arithmetic (clip index, start
frame + arange), with no file reads and no worker processes.

A run's clips live in one of two ways (`prepare_split`):
- On a GPU, when they fit in `DEVICE_DATA_SHARE` of its free memory, they are normalised to
  float32 once and stay there for the whole run: a batch is one gather on the GPU.
- Otherwise, and always on the CPU, the frames stay as they arrived: float16, not normalised, the
  very arrays the store loaded, or that Ray's object store maps read-only into every trial of a
  node. A batch's segments are cropped from them, padded, converted to float32 and normalised:
  only the batch is new memory, so a trial's memory does not grow with the dataset, nor a node's
  with its trials. On a GPU the batch goes over through pinned memory without blocking (`to_device`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from features.arrays import STD_FLOOR, SplitArrays, TrainCopies

# Share of a GPU's free memory one run's clips may take when it starts: the rest is for the
# activations and for the other trials sharing the GPU (each holds its own copy of its data).
DEVICE_DATA_SHARE = 0.5


@dataclass(frozen=True)
class DeviceSplit:
    """A split's clips, their frames one after another (as `SplitArrays` holds them), so a batch is
    one gather: normalised once (`stats` None: on a GPU, see `data_home`), or as stored, each batch
    then normalised with `stats`. The frames, offsets and labels live together: on the device
    batches go to, or in the host's memory."""

    # (frames, bins): float32 normalised, a clip shorter than a segment followed by 0s up to one;
    # or as stored (float16), each clip only its own frames
    frames: torch.Tensor
    offsets: torch.Tensor  # (rows,) int64 beside the frames: each row's first frame in `frames` (or `copies`)
    lengths: np.ndarray  # (rows,) int64 valid frames, on the CPU where segment plans are made
    labels: torch.Tensor  # (rows,) int64 beside the frames
    # Training with augmented copies: row i lists clip i's row and its copies' rows.
    variants: np.ndarray | None = None  # (clips, 1 + copies) int64
    batch_device: torch.device | None = None  # where `gather` delivers batches; None: beside the frames
    # Frames as stored: each batch's per-bin mean and std (floored), ((bins,), (bins,)) float32.
    stats: tuple[torch.Tensor, torch.Tensor] | None = None
    # Frames as stored, with augmented copies: the copies' frames, where rows from `len(self)` on
    # are, kept apart from the originals' rather than copied next to them.
    copies: torch.Tensor | None = None
    # The fewest frames a segment has (the network's smallest input): a clip shorter than that is
    # padded up to it with `padding`; a longer one shorter than a segment is a segment of its own.
    min_frames: int = 1
    # (bins,) float32 normalised: what a padded frame holds, a silent frame in the feature's own
    # domain (`features.compute.silence_frame`); None: 0, the training mean.
    padding: torch.Tensor | None = None

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
    """Where `nbytes` of normalised clips for a run on `device` live: on `device` when it is not a
    GPU or they fit in `DEVICE_DATA_SHARE` of its free memory, else on the host."""
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


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """`array` as a tensor over the same memory, without copying. Arrays from Ray's object store are
    read-only (every trial of a node maps the same pages): nothing here writes to the frames, every
    batch is a new tensor, so torch's warning that writing would be undefined does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return torch.from_numpy(array)


def segment_lengths(lengths: np.ndarray, segment_frames: int, min_frames: int) -> np.ndarray:
    """Frames of each clip's segments: `segment_frames`, or the whole clip when it is shorter (a
    short clip is its own segment, so no padding tells its length), never under `min_frames`
    (the network's smallest input: only a clip shorter than that is padded, with silence)."""
    return np.clip(np.asarray(lengths, dtype=np.int64), min_frames, max(min_frames, segment_frames))


def normalised_padding(silence: np.ndarray | None, mean: np.ndarray, std: np.ndarray) -> torch.Tensor | None:
    """The raw `silence` frame (bins,) normalised as every frame is; None stays None (0: the mean)."""
    if silence is None:
        return None
    return torch.as_tensor((silence.astype(np.float32) - mean) / np.maximum(std, STD_FLOOR), dtype=torch.float32)


def prepared_bytes(split: SplitArrays, min_frames: int) -> int:
    """Bytes of `split` once normalised: float32 frames, each clip padded to `min_frames`."""
    return 4 * split.n_bins * int(np.maximum(split.lengths.astype(np.int64), min_frames).sum())


def prepare_split(
    split: SplitArrays,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
    home: torch.device | None = None,
    silence: np.ndarray | None = None,
) -> DeviceSplit:
    """`split` ready for `gather` to deliver batches of it to `device`, normalised per bin with the
    train statistics: once and for all when it is kept on a GPU (`home`, default: on `device` when
    it fits, see `data_home`), else batch by batch from its frames as stored (`stored_split`).

    A clip shorter than `min_frames` (the network's smallest input) is padded up to that length
    with the raw `silence` frame (bins,), the feature of a silent signal: padding then looks the same
    in every class, as a quiet recording would. None pads with the training mean (0 normalised).
    """
    home = data_home(device, prepared_bytes(split, min_frames)) if home is None else home
    if home.type == "cpu":
        return stored_split(split, mean, std, device, min_frames, silence)
    return normalised_split(split, mean, std, device, min_frames, home, silence)


def stored_split(
    split: SplitArrays,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int = 1,
    silence: np.ndarray | None = None,
) -> DeviceSplit:
    """`split` over its frames as stored, shared, not copied; `gather` crops, pads and normalises
    each batch, and delivers it to `device`."""
    return DeviceSplit(
        frames=shared_tensor(split.features),
        offsets=torch.from_numpy(split.offsets),
        lengths=np.asarray(split.lengths, dtype=np.int64),
        labels=torch.as_tensor(split.labels, dtype=torch.int64),
        batch_device=device,
        stats=(
            torch.as_tensor(mean, dtype=torch.float32),
            torch.as_tensor(std, dtype=torch.float32).clamp_min(STD_FLOOR),
        ),
        min_frames=min_frames,
        padding=normalised_padding(silence, mean, std),
    )


def normalised_split(
    split: SplitArrays,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
    home: torch.device,
    silence: np.ndarray | None = None,
) -> DeviceSplit:
    """`split` normalised once into float32 frames at `home`, each clip padded to `min_frames`."""
    padding = normalised_padding(silence, mean, std)
    spans = np.maximum(split.lengths.astype(np.int64), min_frames)
    offsets = np.cumsum(spans) - spans
    values = shared_tensor(split.features).to(home).float()  # (frames, bins)
    values.sub_(torch.as_tensor(mean, dtype=torch.float32, device=home))
    values.div_(torch.as_tensor(std, dtype=torch.float32, device=home).clamp_min(STD_FLOOR))
    if (spans != split.lengths).any():  # short clips: place every clip's frames after its padded predecessors
        destination = np.repeat(offsets - split.offsets, split.lengths) + np.arange(len(split.features))
        padded = values.new_zeros((int(spans.sum()), split.n_bins))
        if padding is not None:
            padded.copy_(padding.to(home).expand_as(padded))
        values = padded.index_copy_(0, torch.as_tensor(destination, device=home), values)
    return DeviceSplit(
        frames=values,
        offsets=torch.as_tensor(offsets, device=home),
        lengths=np.asarray(split.lengths, dtype=np.int64),
        labels=torch.as_tensor(split.labels, dtype=torch.int64, device=home),
        batch_device=device,
        min_frames=min_frames,
        padding=None if padding is None else padding.to(home),
    )


def with_copies(originals: DeviceSplit, copies: DeviceSplit, source: np.ndarray) -> DeviceSplit:
    """One split holding the originals and their augmented copies (copy i made from original
    `source[i]`), with the table of each original's variants; every original has as many copies.
    Normalised frames are joined into one tensor (they fit on their GPU); frames as stored stay
    where they are, the copies' rows pointing into `copies`."""
    per_clip = np.bincount(source, minlength=len(originals))
    if len(set(per_clip.tolist())) != 1:
        raise ValueError(f"augmented copies per training clip differ ({sorted(set(per_clip.tolist()))})")
    copy_rows = np.argsort(source, kind="stable").reshape(len(originals), -1) + len(originals)
    if originals.stats is None:
        frames, copy_frames, copy_offsets = torch.cat([originals.frames, copies.frames]), None, len(originals.frames)
    else:
        frames, copy_frames, copy_offsets = originals.frames, copies.frames, 0
    return DeviceSplit(
        frames=frames,
        offsets=torch.cat([originals.offsets, copies.offsets + copy_offsets]),
        lengths=np.concatenate([originals.lengths, copies.lengths]),
        labels=torch.cat([originals.labels, copies.labels]),
        variants=np.column_stack([np.arange(len(originals)), copy_rows]),
        batch_device=originals.batch_device,
        stats=originals.stats,
        copies=copy_frames,
        min_frames=originals.min_frames,
        padding=originals.padding,
    )


def prepare_train(
    split: SplitArrays,
    copies: TrainCopies | None,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
    silence: np.ndarray | None = None,
) -> DeviceSplit:
    """The train split for `device`, with its augmented copies when the store has them, all kept
    in one place (`data_home`)."""
    if copies is None or len(copies) == 0:
        return prepare_split(split, mean, std, device, min_frames, silence=silence)
    home = data_home(device, prepared_bytes(split, min_frames) + prepared_bytes(copies.arrays, min_frames))
    originals = prepare_split(split, mean, std, device, min_frames, home, silence)
    copied = prepare_split(copies.arrays, mean, std, device, min_frames, home, silence)
    return with_copies(originals, copied, copies.source)


def random_crops(
    lengths: np.ndarray,
    segment_frames: int,
    per_clip: int,
    generator: torch.Generator,
    variants: np.ndarray | None = None,
    batch_size: int | None = None,
    min_frames: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_clip` random segments of each clip, shuffled: (row, start frame), on the CPU.

    With `variants` (a clip's row and its augmented copies' rows), each segment comes from one of
    them chosen at random, so copies add variety without lengthening the epoch. A start is uniform
    over the positions that keep the segment inside the row's valid frames. Drawing on the CPU with
    one generator makes the crops the same on every device.

    Clips shorter than a segment are their own segments (`segment_lengths`); given `batch_size`,
    the crops then come in batches of clips of about the same length (`bucketed`), every segment
    of batch b `batch_frames(...)` long, and the crops that fill no whole batch are left out.
    """
    clips = torch.arange(len(lengths) if variants is None else len(variants)).repeat(per_clip)
    if variants is not None:
        choice = torch.randint(variants.shape[1], (len(clips),), generator=generator)
        clips = torch.as_tensor(variants)[clips, choice]
    where = torch.rand(len(clips), generator=generator, dtype=torch.float64)  # in [0, 1): a start's place
    order = torch.randperm(len(clips), generator=generator)
    clips, where = clips[order], where[order]
    frames = torch.full((len(clips),), segment_frames)
    if batch_size is not None and bool((np.asarray(lengths) < segment_frames).any()):
        clips, where, frames = bucketed(lengths, clips, where, segment_frames, min_frames, batch_size, generator)
    room = (torch.as_tensor(np.asarray(lengths, dtype=np.int64))[clips] - frames).clamp_min(0) + 1
    return clips, (where * room).long()


def bucketed(
    lengths: np.ndarray,
    clips: torch.Tensor,
    where: torch.Tensor,
    segment_frames: int,
    min_frames: int,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffled crops regrouped into whole batches of clips of about the same length, the batches in
    random order, with each crop's segment length: its batch's shortest. A batch of one length
    needs no padding, and a batch mixing a 0.2 s word with 1 s ones would cut them all to 0.2 s."""
    n_batches = max(len(clips) // batch_size, 1)
    keep = min(len(clips), n_batches * batch_size)  # dropping the shuffled order's tail drops a random few
    own = segment_lengths(np.asarray(lengths)[clips[:keep].numpy()], segment_frames, min_frames)
    by_length = np.argsort(own, kind="stable")  # ties keep their shuffled order
    batches = torch.randperm(n_batches, generator=generator).numpy()
    index = (batches[:, None] * batch_size + np.arange(batch_size)).reshape(-1)
    index = index[index < keep]  # positions in length order, batch after batch
    shortest = own[by_length][index // batch_size * batch_size]  # the first of each batch in length order
    chosen = torch.as_tensor(by_length[index])
    return clips[chosen], where[chosen], torch.as_tensor(shortest)


def batch_frames(lengths: np.ndarray, rows: torch.Tensor, segment_frames: int, min_frames: int) -> int:
    """Frames of the segments of a batch of `rows`: a segment, or its shortest clip's whole length
    when that is shorter (`segment_lengths`): so that no crop of the batch runs past its clip."""
    return int(segment_lengths(np.asarray(lengths)[rows.cpu().numpy()], segment_frames, min_frames).min())


def eval_segments(lengths: np.ndarray, segment_frames: int, overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """Segments covering each whole clip: (clip index, start frame), clip by clip.

    Consecutive segments share `overlap` of their frames; the last one is aligned to the clip's
    end so no frame is left out; a clip shorter than a segment gives one segment, the whole clip
    (its frames: `segment_lengths`).
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
    """The segments as a float32 (batch, bins, frames) batch on `split.device`; `clips` and `starts`
    are beside the frames.

    Normalised frames: `unfold` views every window of `segment_frames` frames without copying;
    indexing it by each segment's first frame copies each segment as one contiguous block, then
    into the models' layout. Frames as stored: see `_crop_stored`.
    """
    if split.stats is None:
        windows = split.frames.unfold(0, segment_frames, 1)  # (windows, bins, segment_frames)
        return to_device(windows[split.offsets[clips] + starts].contiguous(), split.device)
    if split.copies is None:
        return to_device(_crop_stored(split, split.frames, clips, starts, segment_frames), split.device)
    batch = torch.empty(len(clips), split.n_bins, segment_frames)
    in_copies = clips >= len(split)  # rows of the copies follow the originals'
    for frames, chosen in ((split.frames, ~in_copies), (split.copies, in_copies)):
        batch[chosen] = _crop_stored(split, frames, clips[chosen], starts[chosen], segment_frames)
    return to_device(batch, split.device)


def _crop_stored(
    split: DeviceSplit, frames: torch.Tensor, clips: torch.Tensor, starts: torch.Tensor, segment_frames: int
) -> torch.Tensor:
    """Segments of rows `clips` from `frames` as stored, normalised with the same float32 operations
    as `normalised_split` (so to the same values); past a clip's end its padding, as there.

    `index_select` of whole frames (contiguous rows of bins), then the models' layout while still
    in 16 bits (half the bytes to move), then float32 for the batch alone."""
    positions = starts[:, None] + torch.arange(segment_frames)  # (batch, frames) within each clip
    # A short clip's padding reads whatever frame follows it (the last one at the end): zeroed below.
    rows = (split.offsets[clips][:, None] + positions).clamp_max(len(frames) - 1)
    batch = frames.index_select(0, rows.view(-1)).view(len(clips), segment_frames, frames.shape[1])
    mean, std = split.stats
    batch = batch.transpose(1, 2).contiguous().float().sub_(mean[:, None]).div_(std[:, None])  # (batch, bins, frames)
    padding = positions >= torch.from_numpy(split.lengths)[clips][:, None]
    if padding.any():
        if split.padding is None:
            batch.masked_fill_(padding[:, None, :], 0.0)
        else:
            batch = torch.where(padding[:, None, :], split.padding[None, :, None], batch)
    return batch
