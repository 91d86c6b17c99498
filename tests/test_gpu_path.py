"""The GPU path: where a run's clips live, copies that never make the host wait for the GPU, and a
training stack that runs where only PyTorch, h5py, numpy and scipy are installed (the lent GPU
machine). The CUDA tests run only where a GPU is; `tests/bench/bench_gpu.py` runs them there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import training.fit as loop
import training.segments as segments
from features.arrays import FitData, SplitArrays
from features.settings import FeatureSetting
from training import TrialConfig, fit
from training.segments import data_home, gather, prepare_train, random_crops

REPO = Path(__file__).resolve().parent.parent
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
ALL_AUGMENTATIONS = {"time_masks": 2, "time_mask_frames": 8, "freq_masks": 2, "freq_mask_bins": 4, "gain_db": 3.0}


def test_training_and_the_gpu_bench_import_neither_librosa_nor_ray_nor_optuna():
    script = (
        "import sys\n"
        "sys.modules.update(librosa=None, ray=None, optuna=None)  # importing them now fails\n"
        "import training, training.fit, models, features.store, tests.bench.bench_gpu\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]


def test_clips_stay_on_the_gpu_while_they_fit_in_half_its_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    cuda = torch.device("cuda")
    assert data_home(cuda, 500) == cuda
    assert data_home(cuda, 501) == torch.device("cpu")
    assert data_home(torch.device("cpu"), 10**15) == torch.device("cpu")


# --- on a GPU --------------------------------------------------------------------------------------


def gpu_data(n_bins: int = 32, clips: int = 24) -> FitData:
    rng = np.random.default_rng(0)
    labels = np.arange(clips) % 8

    def split(seed: int) -> SplitArrays:
        rows = [(rng.normal(size=(n_bins, 120)) + label).astype(np.float16) for label in labels]
        return SplitArrays.of_clips(rows, labels, [f"c{seed}-{i}" for i in range(clips)])

    stats = np.ones(n_bins, dtype=np.float32)
    classes = tuple(f"g{i}" for i in range(8))
    return FitData(split(0), split(1), 0 * stats, stats, classes, FeatureSetting(n_bins=n_bins))


def gpu_config(**training) -> TrialConfig:
    return TrialConfig.from_dict(
        {
            "features": FeatureSetting(n_bins=32).to_dict(),
            "model": {"arch": "cnn2d", "params": {"depth": 2, "channels": 8}},
            "augment": {**ALL_AUGMENTATIONS, "mixup_alpha": 0.2},
            "training": {"segment_seconds": 1.0, "segments_per_clip": 2, "batch_size": 8, "max_epochs": 2, **training},
        }
    )


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_steps_never_make_the_host_wait_for_the_gpu(monkeypatch, precision):
    def synchronisation_is_an_error(function):
        def checked(*args, **kwargs):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return function(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        return checked

    for name in ("training_batch", "_step"):  # a batch and its step: everything inside the loop
        monkeypatch.setattr(loop, name, synchronisation_is_an_error(getattr(loop, name)))
    history = fit(gpu_config(precision=precision), gpu_data(), device="cuda").history
    assert len(history) == 2 and np.isfinite(history[-1].train_loss)


@CUDA
def test_clips_too_large_for_the_gpu_stay_on_the_host_and_train_the_same(monkeypatch):
    data, config, cuda = gpu_data(), gpu_config(), torch.device("cuda")
    frames = config.segment_frames
    on_gpu = prepare_train(data.train, None, data.mean, data.std, cuda, frames)
    monkeypatch.setattr(segments, "DEVICE_DATA_SHARE", 0.0)
    on_host = prepare_train(data.train, None, data.mean, data.std, cuda, frames)
    assert on_gpu.frames.is_cuda and not on_host.frames.is_cuda
    clips, starts = random_crops(on_host.lengths, frames, 2, torch.Generator().manual_seed(0))
    batch = gather(on_host, clips, starts, frames)
    assert batch.is_cuda and torch.equal(batch, gather(on_gpu, clips.to(cuda), starts.to(cuda), frames))
    host_run = fit(config, data, device="cuda").history
    monkeypatch.setattr(segments, "DEVICE_DATA_SHARE", 0.5)
    gpu_run = fit(config, data, device="cuda").history
    for host, gpu in zip(host_run, gpu_run):
        assert host.train_loss == pytest.approx(gpu.train_loss, rel=1e-3)
        assert host.valid_clip_acc == pytest.approx(gpu.valid_clip_acc, abs=0.05)
