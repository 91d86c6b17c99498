"""The fast path (`training.fast_path`) computes what the plain one does, within float rounding:
every family's outputs, one optimizer step, and a seeded run's validation curve."""

from __future__ import annotations

import copy
import importlib
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
from tests.test_training import curves, make_config, make_data
from training import TrialConfig, fit
from training.fast import evaluation_model, no_gradients, training_layout

fit_module = importlib.import_module("training.fit")  # the module: `training.fit` is the function

# family → (params, bins, frames): small members of each family, inputs they fit
FAMILIES = {
    "cnn2d": ({"depth": 3, "channels": 8, "global_pool": "avgmax"}, 32, 48),
    "baseline": ({}, 32, 1024),
    "resnet": ({"depth": 2, "channels": 8}, 32, 48),
    "shortchunk": ({"depth": 4, "channels": 8, "final_channels": 16, "dense_units": 16}, 32, 32),
    "crnn": ({"depth": 2, "channels": 8, "rnn_units": 8}, 32, 48),
    "cnn1d": ({"depth": 2, "channels": 16}, 32, 48),
}
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def family(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A trained-looking member of `name` (batch norms with non-trivial statistics) and a batch."""
    params, bins, frames = FAMILIES[name]
    torch.manual_seed(0)
    model = models.build_model(name, params, bins, 5)
    x = torch.randn(8, bins, frames)
    with torch.no_grad():  # a few training-mode passes move the running statistics off (0, 1)
        for _ in range(3):
            model(2 * x + 1)
    return model, x


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fast_outputs_equal_plain_ones_in_both_modes(name):
    model, x = family(name)
    fast = training_layout(copy.deepcopy(model), True)
    for mode in (True, False):
        torch.manual_seed(1)  # the same dropout masks
        plain_out = model.train(mode)(x)
        torch.manual_seed(1)
        torch.testing.assert_close(fast.train(mode)(x), plain_out, **TOLERANCE)
    with torch.no_grad():
        plain_eval = model.eval()(x)
    with no_gradients(True):
        folded = evaluation_model(model.train(), True).eval()(x)
    torch.testing.assert_close(folded, plain_eval, **TOLERANCE)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_one_optimizer_step_gives_the_same_gradients_and_parameters(name):
    """SGD with momentum: an update proportional to the gradient. (Adam's first step is about
    lr * sign(gradient), which turns a gradient at rounding level into a full step either way.)"""
    model, x = family(name)
    fast = training_layout(copy.deepcopy(model), True)
    targets = torch.arange(len(x)) % 5
    for net in (model, fast):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(1)
        F.cross_entropy(net.train()(x), targets).backward()
        optimizer.step()
    for (key, plain), fast_value in zip(model.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(fast_value.grad, plain.grad, **TOLERANCE, msg=lambda why, key=key: f"{key}: {why}")
    for (key, plain), fast_value in zip(model.state_dict().items(), fast.state_dict().values(), strict=True):
        torch.testing.assert_close(fast_value, plain, **TOLERANCE, msg=lambda why, key=key: f"{key}: {why}")


def test_folding_leaves_no_batch_norm_after_a_convolution_and_the_model_as_it_was():
    model, _ = family("cnn2d")
    folded = evaluation_model(model.train(), True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) and model.training
    one_d, _ = family("cnn1d")
    assert evaluation_model(one_d, True) is one_d, "1D networks: folding costs more than it saves"


@pytest.mark.parametrize("arch", ["cnn2d", "cnn1d"])
def test_a_seeded_run_has_the_same_validation_curve_on_both_paths(arch):
    data = make_data()
    model = {"arch": arch, "params": {"depth": 2, "channels": 8}}
    runs = {}
    for fast in (False, True):
        config = make_config(model=model, training={"max_epochs": 3, "fast_path": fast})
        runs[fast] = curves(fit(config, data, device="cpu").history)
    for plain, fast in zip(runs[False], runs[True], strict=True):
        assert plain.keys() == fast.keys()
        for key in plain:
            np.testing.assert_allclose(fast[key], plain[key], rtol=1e-4, atol=1e-5, err_msg=key)


# A 40 MB tensor (an activation's size) allocated, touched and freed four times; the minor page
# faults of the last two (the heap settles in the first two).
REALLOCATION_FAULTS = """
import resource, sys
import torch
from training.fast import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
torch.ones(10_000_000)
torch.ones(10_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    torch.ones(10_000_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc only")
def test_kept_memory_serves_the_next_allocation_without_page_faults():
    """By default glibc gives a large allocation fresh pages each time (a page fault per 4 KiB on first
    touch); on the fast path the process keeps what it freed. Each in a process of its own: the
    setting is process-wide."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    faults = {}
    for mode in ("default", "kept"):
        done = subprocess.run([sys.executable, "-c", REALLOCATION_FAULTS, mode], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        faults[mode] = int(done.stdout)
    assert faults["default"] > 10_000  # 2 x 40 MB of fresh pages: about 19,500 faults
    assert faults["kept"] < 500, faults


@pytest.mark.parametrize(("fast", "device", "kept"), [(True, "cpu", True), (False, "cpu", False)])
def test_the_fast_path_keeps_freed_memory_on_the_cpu(fast, device, kept, monkeypatch):
    calls = []
    monkeypatch.setattr(fit_module, "keep_freed_memory", lambda: calls.append(1))
    raw = make_config(model={"arch": "cnn2d", "params": {"depth": 2, "channels": 8}}, training={"fast_path": fast})
    config = TrialConfig.from_dict(raw)
    fit_module._prepare_run(config, make_data(), torch.device(device), config.segment_frames, True)
    assert bool(calls) == kept
