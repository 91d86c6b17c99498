"""Clip-level evaluation: each clip is cut into overlapping segments covering it, the model's
segment probabilities are averaged per clip, and the clip's prediction is the most probable class.
The probabilities need no labels (`predict_clips`: prediction uses it); accuracy and loss are
computed on top of them where labels exist (`evaluate_clips`: `fit()` on the validation split,
the report on validation and test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from features.arrays import SplitArrays
from training.fast import evaluation_model, no_gradients
from training.segments import DeviceSplit, eval_segments, gather, prepare_split, segment_lengths


@dataclass(frozen=True)
class ClipEvaluation:
    clip_probs: np.ndarray  # (clips, classes) float64: mean of the segments' softmax probabilities
    clip_acc: float  # fraction of clips whose most probable class is their label: the number that matters
    segment_acc: float  # fraction of all segments classified correctly on their own
    loss: float  # segment cross-entropy, averaged per clip, then over clips (each clip counts once)

    @property
    def predictions(self) -> np.ndarray:
        """(clips,) predicted class index of each clip."""
        return self.clip_probs.argmax(axis=1)


def evaluate_clips(
    model: nn.Module,
    split: SplitArrays,
    mean: np.ndarray,
    std: np.ndarray,
    segment_frames: int,
    overlap: float,
    device: torch.device | str | None = None,
    batch_size: int = 64,
    fast: bool = True,
    *,
    min_frames: int,
    silence: np.ndarray | None = None,
) -> ClipEvaluation:
    """Evaluate `model` on every clip of `split`, normalised with the train `mean` and `std`.

    `device` None means the model's own device; another device moves the model there. `fast`:
    through `training.fast.evaluation_model` (False: the model itself, the plain path).
    `min_frames` and `silence`: the network's smallest input and what pads a clip up to it
    (`TrialConfig.min_frames`, `FitData.silence`), as in training.
    """
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    device = torch.device(device)
    model.to(device)
    prepared = prepare_split(split, mean, std, device, min_frames, silence=silence)
    return evaluate_prepared(model, prepared, segment_frames, overlap, batch_size, fast)


def evaluate_prepared(
    model: nn.Module, split: DeviceSplit, segment_frames: int, overlap: float, batch_size: int, fast: bool = True
) -> ClipEvaluation:
    """`evaluate_clips` on a split already prepared for batches (what `fit()` keeps)."""
    log_probs, clips = segment_log_probs(model, split, segment_frames, overlap, batch_size, fast)
    return summarise(log_probs, clips, split.labels.cpu(), len(split))


def predict_clips(
    model: nn.Module, split: DeviceSplit, segment_frames: int, overlap: float, batch_size: int = 64
) -> np.ndarray:
    """(clips, classes) probabilities of the clips of `split` (prepared for batches), whose labels
    are not read: what prediction uses on audio of unknown genre."""
    log_probs, clips = segment_log_probs(model, split, segment_frames, overlap, batch_size)
    return clip_probabilities(log_probs, clips, len(split)).numpy()


def segment_log_probs(
    model: nn.Module, split: DeviceSplit, segment_frames: int, overlap: float, batch_size: int, fast: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (segments, classes) of the segments covering every clip, float64 on the
    CPU, and each segment's clip index (segments,). Reads the frames and lengths only. `fast`: under
    inference mode, by `training.fast.evaluation_model` (a folded copy: `model` is left as it was)."""
    clips_np, starts_np = eval_segments(split.lengths, segment_frames, overlap)
    device = split.frames.device
    clips, starts = torch.as_tensor(clips_np, device=device), torch.as_tensor(starts_np, device=device)
    was_training = model.training
    evaluated = evaluation_model(model, fast)
    evaluated.eval()  # batch-norm running statistics, no dropout
    try:
        with no_gradients(fast):
            log_probs = _log_probs(evaluated, split, clips, starts, segment_frames, batch_size)
    finally:
        model.train(was_training)
    # Summing on the CPU in float64 keeps the per-clip sums exact enough and deterministic (and
    # makes a new tensor: outside inference mode, as later in-place use needs).
    return log_probs.cpu().double(), torch.from_numpy(clips_np)


def _log_probs(
    model: nn.Module, split: DeviceSplit, clips: torch.Tensor, starts: torch.Tensor, segment_frames: int, size: int
) -> torch.Tensor:
    """(segments, classes) float32 log-probabilities, batch by batch, beside the model; segments
    of one length at a time (a clip shorter than a segment is one segment of its own length)."""
    log_probs = None
    for frames, chosen in _batches_by_length(split, clips, segment_frames, size):
        logits = model(gather(split, clips[chosen], starts[chosen], frames))
        if log_probs is None:
            log_probs = logits.new_empty((len(clips), logits.shape[1]), dtype=torch.float32)
        # Written into one tensor made once: a small tensor kept per batch would sit between
        # the batches' freed memory, which the allocator then cannot reuse nor give back
        # (a trial's memory grew with the number of validation segments, bench_memory.py).
        log_probs[chosen] = torch.log_softmax(logits.float(), dim=1)
    return log_probs


def _batches_by_length(
    split: DeviceSplit, clips: torch.Tensor, segment_frames: int, size: int
) -> Iterator[tuple[int, slice | torch.Tensor]]:
    """(frames, segment positions) of each batch: up to `size` segments of one length, in order
    (one slice after another when every segment is a whole `segment_frames`)."""
    frames = segment_lengths(split.lengths[clips.cpu().numpy()], segment_frames, split.min_frames)
    if (frames == segment_frames).all():
        for first in range(0, len(clips), size):
            yield segment_frames, slice(first, first + size)
        return
    for length in np.unique(frames):
        members = torch.as_tensor(np.flatnonzero(frames == length), device=clips.device)
        for first in range(0, len(members), size):
            yield int(length), members[first : first + size]


def clip_probabilities(log_probs: torch.Tensor, clips: torch.Tensor, n_clips: int) -> torch.Tensor:
    """(clips, classes): the mean of each clip's segment probabilities."""
    counts = torch.bincount(clips, minlength=n_clips).to(log_probs.dtype)
    sums = torch.zeros(n_clips, log_probs.shape[1], dtype=log_probs.dtype).index_add_(0, clips, log_probs.exp())
    return sums / counts[:, None]


def summarise(log_probs: torch.Tensor, clips: torch.Tensor, labels: torch.Tensor, n_clips: int) -> ClipEvaluation:
    """Accuracies and loss of segment `log_probs` (segments, classes) belonging to `clips`
    (segments,), on top of the clip probabilities, against the clips' `labels`."""
    probs = clip_probabilities(log_probs, clips, n_clips)
    counts = torch.bincount(clips, minlength=n_clips).to(log_probs.dtype)
    segment_labels = labels[clips]
    segment_loss = -log_probs.gather(1, segment_labels[:, None]).squeeze(1)
    clip_loss = torch.zeros(n_clips, dtype=log_probs.dtype).index_add_(0, clips, segment_loss) / counts
    return ClipEvaluation(
        clip_probs=probs.numpy(),
        clip_acc=(probs.argmax(dim=1) == labels).double().mean().item(),
        segment_acc=(log_probs.argmax(dim=1) == segment_labels).double().mean().item(),
        loss=clip_loss.mean().item(),
    )
