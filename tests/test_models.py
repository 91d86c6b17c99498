"""The model registry: every family builds from a config, maps (batch, bins, frames) to
(batch, n_classes) at the lengths it fits, and rejects bad configs and too-small inputs with a
`UserError` naming the key at fault, before any training."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
import torch
from torch import nn

from common.errors import UserError
from common.typed import from_dict
from models import architecture_names, build_model, check_input_fits, params_class
from models.params import min_input
from models.registry import parse_params

N_CLASSES = 8
BINS = (12, 40, 128)
FRAMES = (130, 259, 1024)

# Small configs (few channels) so the whole grid runs in seconds on two cores.
SMALL: dict[str, dict[str, Any]] = {
    "baseline": {"pool1": 4, "pool2": 4, "pool3": 2},
    "baseline-homework": {},
    "cnn1d": {"channels": 16},
    "cnn2d": {"channels": 4},
    "cnn2d-chroma": {"channels": 4, "freq_pool_size": 1, "stride": 1, "global_pool": "max"},
    "resnet": {"channels": 4, "global_pool": "avgmax"},
    "resnet-pooled": {"channels": 4, "depth": 3, "pool_size": 2, "stride": 1},
    "shortchunk": {"channels": 4, "final_channels": 8, "dense_units": 8},
    "crnn": {"channels": 4, "rnn_units": 8},
    "crnn-chroma": {"channels": 4, "freq_pool_size": 1, "rnn_units": 8, "rnn_layers": 1},
    "shortchunk-shallow": {"depth": 3, "channels": 4, "final_channels": 8, "dense_units": 8},
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: with other work on a 2-core machine, torch's thread pool spends
    ten times longer waiting for its second thread than computing, so use one and restore it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def arch_of(case: str) -> str:
    return case.split("-")[0]


def forward(arch: str, params: dict[str, Any], n_bins: int, n_frames: int) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model(arch, params, n_bins, N_CLASSES).eval()
    with torch.no_grad():
        return model(torch.randn(2, n_bins, n_frames))


def fits(arch: str, params: dict[str, Any], n_bins: int, n_frames: int) -> bool:
    try:
        check_input_fits(arch, params, n_bins, n_frames)
    except UserError:
        return False
    return True


def test_all_families_registered() -> None:
    assert set(architecture_names()) >= {"baseline", "cnn1d", "cnn2d", "resnet", "shortchunk"}
    assert {arch_of(case) for case in SMALL} == set(architecture_names())


@pytest.mark.parametrize("arch", architecture_names())
def test_defaults_run_at_their_natural_size(arch: str) -> None:
    """Each family's default config fits 128 mel bins at the homework's 1024 frames (shortchunk: its
    own short chunks, about 3 s), so a search that leaves a family's params alone can run it."""
    n_frames = 130 if arch == "shortchunk" else 1024
    check_input_fits(arch, {}, 128, n_frames)
    logits = forward(arch, {}, 128, n_frames)
    assert logits.shape == (2, N_CLASSES) and torch.isfinite(logits).all()


@pytest.mark.parametrize("case", sorted(SMALL))
def test_forward_over_lengths_and_bins(case: str) -> None:
    """Where `check_input_fits` accepts an input the model runs on it; where it refuses, the model
    would really have failed, so the check is neither too strict nor too lax."""
    arch, params = arch_of(case), SMALL[case]
    fitted = 0
    for n_bins, n_frames in itertools.product(BINS, FRAMES):
        if fits(arch, params, n_bins, n_frames):
            logits = forward(arch, params, n_bins, n_frames)
            assert logits.shape == (2, N_CLASSES)
            assert torch.isfinite(logits).all()
            fitted += 1
        else:
            with pytest.raises(RuntimeError):
                forward(arch, params, n_bins, n_frames)
    assert fitted >= 3, f"{case} fits too few of the test inputs to be tested"


@pytest.mark.parametrize("case", sorted(SMALL))
def test_smallest_input_is_exact(case: str) -> None:
    """The analytic minimum matches PyTorch: it runs at the minimum and fails one step below."""
    arch, params = arch_of(case), SMALL[case]
    typed = parse_params(arch, params)
    need_frames, need_bins = min_input(typed.time_reductions()), min_input(typed.freq_reductions())
    roomy_bins = max(need_bins, 12)
    assert forward(arch, params, roomy_bins, need_frames).shape == (2, N_CLASSES)
    if need_frames > 1:
        with pytest.raises(UserError, match="use longer segments"):
            check_input_fits(arch, params, roomy_bins, need_frames - 1)
        with pytest.raises(RuntimeError):
            forward(arch, params, roomy_bins, need_frames - 1)
    if typed.freq_reductions() and need_bins > 1:
        assert forward(arch, params, need_bins, need_frames).shape == (2, N_CLASSES)
        with pytest.raises(UserError, match="use more bins"):
            check_input_fits(arch, params, need_bins - 1, need_frames)
        with pytest.raises(RuntimeError):
            forward(arch, params, need_bins - 1, need_frames)


@pytest.mark.parametrize("case", sorted(SMALL))
def test_trains_one_step(case: str) -> None:
    """Gradients reach every weight in training mode (batch norm in batch statistics mode)."""
    arch, params = arch_of(case), SMALL[case]
    n_frames = max(130, min_input(parse_params(arch, params).time_reductions()))
    n_bins = max(40, min_input(parse_params(arch, params).freq_reductions()))
    model = build_model(arch, params, n_bins, N_CLASSES).train()
    loss = nn.functional.cross_entropy(model(torch.randn(3, n_bins, n_frames)), torch.tensor([0, 1, 2]))
    loss.backward()
    for name, weight in model.named_parameters():
        assert weight.grad is not None and torch.isfinite(weight.grad).all(), name


def count(model: nn.Module) -> int:
    return sum(weight.numel() for weight in model.parameters())


def test_baseline_is_the_homework_model() -> None:
    model = build_model("baseline", {}, 128, N_CLASSES)
    convs = [layer for layer in model.modules() if isinstance(layer, nn.Conv1d)]
    assert [tuple(conv.weight.shape) for conv in convs] == [(32, 128, 8), (32, 32, 8), (64, 32, 4)]
    assert all(conv.padding == (0,) and conv.stride == (1,) for conv in convs)
    pools = [layer.kernel_size for layer in model.modules() if isinstance(layer, nn.MaxPool1d)]
    assert pools == [8, 8, 4]
    assert [layer.num_features for layer in model.modules() if isinstance(layer, nn.BatchNorm1d)] == [32, 32, 64]
    linear = next(layer for layer in model.modules() if isinstance(layer, nn.Linear))
    assert tuple(linear.weight.shape) == (N_CLASSES, 192)
    # conv1 128*32*8+32, conv2 32*32*8+32, conv3 32*64*4+64, three BNs 2*(32+32+64), linear 192*8+8.
    assert count(model) == 32800 + 8224 + 8256 + 256 + 1544 == 51080


def test_baseline_adaptive_pool_is_identity_at_1024_frames() -> None:
    model = build_model("baseline", {}, 128, N_CLASSES).eval()
    seen: dict[str, torch.Tensor] = {}
    adaptive = next(layer for layer in model.modules() if isinstance(layer, nn.AdaptiveAvgPool1d))
    flatten = next(layer for layer in model.modules() if isinstance(layer, nn.Flatten))
    adaptive.register_forward_hook(lambda _m, inputs, output: seen.update(into=inputs[0], out=output))
    flatten.register_forward_hook(lambda _m, _inputs, output: seen.update(flat=output))
    with torch.no_grad():
        model(torch.randn(2, 128, 1024))
    assert seen["into"].shape == (2, 64, 3)
    assert torch.equal(seen["into"], seen["out"])
    assert seen["flat"].shape == (2, 192)


def test_parameter_counts_are_sane() -> None:
    counts = {arch: count(build_model(arch, {}, 128, N_CLASSES)) for arch in architecture_names()}
    assert 50_000 <= counts["cnn2d"] <= 2_000_000
    assert 50_000 <= counts["cnn1d"] <= 2_000_000
    assert 50_000 <= counts["resnet"] <= 2_000_000
    assert 50_000 <= counts["crnn"] <= 2_000_000
    # The paper's 7-layer model: 128,128,256,256,256,256,512 channels and a 512-unit dense layer.
    assert counts["shortchunk"] == 3_664_010
    # 2D families share their weights across bins; the 1D ones grow with them.
    assert count(build_model("cnn2d", {}, 40, N_CLASSES)) == counts["cnn2d"]
    assert count(build_model("cnn1d", {}, 40, N_CLASSES)) < counts["cnn1d"]


def test_unknown_architecture_names_it_and_the_known_ones() -> None:
    for call in (
        lambda: build_model("transformer", {}, 128, N_CLASSES),
        lambda: check_input_fits("transformer", {}, 128, 1024),
        lambda: params_class("transformer"),
    ):
        with pytest.raises(UserError, match="'transformer'") as error:
            call()
        assert all(name in str(error.value) for name in architecture_names())


@pytest.mark.parametrize(
    ("arch", "params", "key"),
    [
        ("cnn2d", {"depht": 3}, "model.params.depht"),
        ("baseline", {"depth": 3}, "model.params.depth"),
        ("cnn2d", {"depth": "3"}, "model.params.depth"),
        ("cnn2d", {"batch_norm": 1}, "model.params.batch_norm"),
        ("cnn1d", {"dropout": "high"}, "model.params.dropout"),
        ("cnn2d", {"depth": 0}, "model.params.depth"),
        ("cnn1d", {"dropout": 1.5}, "model.params.dropout"),
        ("resnet", {"dropout": -0.1}, "model.params.dropout"),
        ("cnn2d", {"global_pool": "sum"}, "model.params.global_pool"),
        ("cnn1d", {"pool_size": 0}, "model.params.pool_size"),
        ("cnn2d", {"freq_pool_size": 0}, "model.params.freq_pool_size"),
        ("cnn2d", {"growth": 4.0, "depth": 8}, "model.params.growth"),
        ("resnet", {"kernel_size": 4}, "model.params.kernel_size"),
        ("resnet", {"stride": 0}, "model.params.stride"),
        ("shortchunk", {"channels": 0}, "model.params.channels"),
        ("baseline", {"kernel2": 0}, "model.params.kernel2"),
        ("crnn", {"rnn_layers": 0}, "model.params.rnn_layers"),
    ],
)
def test_bad_params_name_the_key(arch: str, params: dict[str, Any], key: str) -> None:
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        build_model(arch, params, 128, N_CLASSES)
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        check_input_fits(arch, params, 128, 1024)


def test_too_small_input_names_the_knobs_before_training() -> None:
    with pytest.raises(UserError) as error:
        check_input_fits("cnn2d", {"depth": 6}, 128, 43)
    message = str(error.value)
    for part in ("cnn2d", "depth 6", "64 frames", "43 frames", "model.params.depth", "model.params.pool_size"):
        assert part in message
    with pytest.raises(UserError, match="model.params.freq_pool_size") as error:
        check_input_fits("cnn2d", {}, 12, 1024)
    assert "12 bins" in str(error.value)
    with pytest.raises(UserError, match="at least 128 frames and 128 bins"):
        check_input_fits("shortchunk", {}, 128, 100)


def test_baseline_too_short_names_its_kernels_and_pools() -> None:
    with pytest.raises(UserError) as error:
        check_input_fits("baseline", {}, 128, 130)
    message = str(error.value)
    assert "511 frames" in message and "130 frames" in message
    assert "model.params.pool1" in message and "model.params.kernel1" in message
    check_input_fits("baseline", {}, 128, 511)


def test_nonsense_input_sizes_are_user_errors() -> None:
    with pytest.raises(UserError, match="n_frames"):
        check_input_fits("cnn1d", {}, 128, 0)
    with pytest.raises(UserError, match="n_bins"):
        build_model("cnn1d", {}, 0, N_CLASSES)


@pytest.mark.parametrize("arch", architecture_names())
def test_params_round_trip(arch: str) -> None:
    cls = params_class(arch)
    assert dataclasses.is_dataclass(cls)
    defaults = dataclasses.asdict(cls())
    assert dataclasses.asdict(from_dict(cls, defaults, "model.params")) == defaults
    changed = {**defaults, "dropout": 0.25} if "dropout" in defaults else {**defaults, "pool1": 4}
    assert dataclasses.asdict(parse_params(arch, changed)) == changed
    assert parse_params(arch, {}) == cls() == parse_params(arch, None)
