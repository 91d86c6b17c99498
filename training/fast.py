"""The fast path's layouts, evaluation copies and memory allocator settings (`training.fast_path`,
on by default): the same numbers as the plain path within float rounding, in less time
(tests/bench/bench_speed.py measures)."""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import platform
import warnings
from contextlib import AbstractContextManager

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from models.blocks import ConvBlock2d

# glibc's mallopt parameters (malloc.h) and the values the fast path sets.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
KEPT_FREE_BYTES = 1 << 30  # free memory at the heap's top kept, up to this, instead of given back
TOP_PAD_BYTES = 64 << 20  # the heap grows by this much more than asked, fewer growths


@functools.cache  # process-wide: once is enough
def keep_freed_memory() -> bool:
    """Make this process keep the memory it frees for its next allocations (glibc's malloc; False,
    and nothing changed, elsewhere). By default glibc gives an allocation above 128 KiB pages of its
    own from the kernel and hands them back when freed: every training step's activations, tens of
    MB each, came back as fresh pages the kernel zeroed on first touch, 7,000-50,000 page faults and
    up to a fifth of a CPU step. Kept, the same pages serve every step; the process holds its
    peak use until it ends (a trial's worker, the report's retraining). Set when a CPU run starts
    on the fast path."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEPT_FREE_BYTES), (M_TOP_PAD, TOP_PAD_BYTES))
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)


def training_layout(model: nn.Module, fast: bool) -> nn.Module:
    """`model` with its 2D kernels in channels_last (NHWC) when `fast`: oneDNN's convolutions,
    pools and batch norms run 1.3-1.5x faster so at 1 thread; 1D layers are left as they are. Its
    conv blocks max-pool before their ReLU (`ConvBlock2d.pool_first`: the same numbers)."""
    if not fast:
        return model
    for module in model.modules():
        if isinstance(module, ConvBlock2d):
            module.pool_first = True
    return model.to(memory_format=torch.channels_last)


def evaluation_model(model: nn.Module, fast: bool) -> nn.Module:
    """What evaluates `model` (the caller puts it in eval mode): `model` itself, or when `fast` and
    it has 2D batch norms, a copy with every batch norm that follows a convolution folded into it
    (torch.fx's `fuse`), in channels_last. Networks without 2D batch norms gain less from folding
    than a fold costs each epoch (bench_speed); one torch.fx cannot trace (a plugin's, say) is
    evaluated unfolded."""
    if not fast or not any(isinstance(module, nn.BatchNorm2d) for module in model.modules()):
        return model
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():  # fx's notes on modules it leaves as calls
            warnings.simplefilter("ignore")
            folded = fuse(model, inplace=False)
    except Exception:  # noqa: BLE001 — tracing fails in many ways on untraceable code; unfolded is correct
        folded = copy.deepcopy(model)
    finally:
        model.train(was_training)
    return training_layout(folded, fast)


def no_gradients(fast: bool) -> AbstractContextManager:
    """`torch.inference_mode` when `fast` (no version counters nor views tracked), else `no_grad`."""
    return torch.inference_mode() if fast else torch.no_grad()
