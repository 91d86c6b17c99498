"""The training loop on tiny in-memory data: it learns, it is reproducible and resumable, and bad
configs fail early with messages naming their keys."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import models
from common.errors import UserError
from features.arrays import FitData, SplitArrays
from features.settings import FeatureSetting
from training import EpochMetrics, TrainingDiverged, TrainingState, TrialConfig, evaluate_clips, fit, predict_clips
from training.config import OptimizerConfig, ScheduleConfig
from training.fit import check_precision
from training.optim import make_optimizer
from training.saved_model import NO_LABEL, load_model, save_model
from training.schedules import Plateau, Schedule, plateau_update
from training.segments import eval_segments, prepare_split, random_crops

REPO = Path(__file__).resolve().parent.parent
N_CLASSES, N_BINS, N_FRAMES = 8, 64, 200
SETTING = FeatureSetting(n_bins=N_BINS)  # 22050 Hz, hop 512: 43 frames per second
SMALL_MODEL = {"arch": "cnn1d", "params": {"depth": 2, "channels": 16, "dropout": 0.2}}
TIMING = ("epoch_seconds",)

HOMEWORK_BASELINE = {
    "features": {
        "kind": "mel",
        "sample_rate": 22050,
        "n_fft": 1024,
        "hop_length": 512,
        "n_bins": 128,
        "compression": "log10_1p",
    },
    "model": {"arch": "baseline"},
    "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0},
    "schedule": {"name": "plateau", "factor": 0.2, "patience": 3},
    "training": {
        "segment_seconds": 23.78,
        "segments_per_clip": 1,
        "batch_size": 4,
        "max_epochs": 100,
        "min_lr": 1e-5,
        "eval_overlap": 0.0,
    },
}


def make_split(seed: int, clips_per_class: int, n_bins: int = N_BINS, n_frames: int = N_FRAMES) -> SplitArrays:
    """Each class has its own spectral profile (fixed across splits) under heavy noise; clip
    lengths vary and some clips are shorter than a segment, as real data is."""
    profiles = np.random.default_rng(1234).normal(scale=1.0, size=(N_CLASSES, n_bins))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), clips_per_class)
    features = profiles[labels][:, :, None] + rng.normal(scale=2.0, size=(len(labels), n_bins, n_frames))
    features = 3.0 + 2.0 * features  # raw, un-normalised scale
    lengths = rng.integers(n_frames // 2, n_frames + 1, size=len(labels)).astype(np.int32)
    lengths[0] = 20  # shorter than a segment
    ids = tuple(f"clip{i:03d}" for i in range(len(labels)))
    clips = [clip[:, :length] for clip, length in zip(features.astype(np.float16), lengths)]
    return SplitArrays.of_clips(clips, labels, ids)


def make_data(setting: FeatureSetting = SETTING, n_frames: int = N_FRAMES, per_class=(6, 2)) -> FitData:
    n_bins = setting.n_bins
    train = make_split(0, per_class[0], n_bins, n_frames)
    valid = make_split(1, per_class[1], n_bins, n_frames)
    flat = train.features.astype(np.float32).T
    return FitData(
        train=train,
        valid=valid,
        mean=flat.mean(axis=1),
        std=flat.std(axis=1) + 1e-3,
        classes=tuple(f"genre{i}" for i in range(N_CLASSES)),
        setting=setting,
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: on a busy machine, torch's worker threads spin waiting on each other
    and an epoch takes 100x longer than on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> FitData:
    return make_data()


def make_config(**sections: dict) -> dict:
    config = {
        "features": SETTING.to_dict(),
        "model": SMALL_MODEL,
        "optimizer": {"name": "adam", "lr": 3e-3},
        "schedule": {"name": "none"},
        "training": {"segment_seconds": 1.0, "segments_per_clip": 2, "batch_size": 16, "max_epochs": 2},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def curves(history: list[EpochMetrics]) -> list[dict]:
    """Metrics without the wall-clock field, which differs run to run."""
    return [{k: v for k, v in m.to_dict().items() if k not in TIMING} for m in history]


# --- config -----------------------------------------------------------------------------------


def test_config_round_trips():
    values = make_config(
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-4, "l1": 1e-6},
        schedule={"name": "step", "factor": 0.5, "step_size": 3, "warmup_epochs": 2},
        training={"eval_overlap": 0.25, "seed": 7},
        augment={"time_masks": 2, "time_mask_frames": 10, "mixup_alpha": 0.2, "gain_db": 6.0},
    )
    config = TrialConfig.from_dict(values)
    again = config.to_dict()
    assert TrialConfig.from_dict(again) == config
    assert again["optimizer"]["momentum"] == 0.8 and again["model"] == SMALL_MODEL
    assert TrialConfig.from_dict(TrialConfig().to_dict()) == TrialConfig()


def test_unknown_key_is_named_with_its_section():
    values = make_config(optimizer={"momentun": 0.9})
    with pytest.raises(UserError, match=r"optimizer\.momentun"):
        TrialConfig.from_dict(values)
    with pytest.raises(UserError, match=r"\bsurprise\b"):
        TrialConfig.from_dict({**make_config(), "surprise": {}})


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("optimizer", "lr", 0.0),
        ("optimizer", "lr", -1.0),
        ("optimizer", "name", "adagrad"),
        ("optimizer", "momentum", 1.5),
        ("optimizer", "weight_decay", -1e-4),
        ("schedule", "name", "linear"),
        ("schedule", "factor", 1.0),
        ("schedule", "patience", -1),
        ("training", "eval_overlap", 1.0),
        ("training", "batch_size", 0),
        ("training", "segment_seconds", 0.0),
        ("training", "max_epochs", 0),
        ("augment", "mixup_alpha", -0.1),
        ("augment", "time_masks", -1),
    ],
)
def test_bad_values_are_rejected_naming_the_key(section, key, value):
    with pytest.raises(UserError, match=rf"{section}\.{key}"):
        TrialConfig.from_dict(make_config(**{section: {key: value}}))


def test_cross_section_checks():
    with pytest.raises(UserError, match=r"optimizer\.lr.*training\.min_lr"):
        TrialConfig.from_dict(make_config(optimizer={"lr": 1e-6}, training={"min_lr": 1e-5}))
    mfcc = {"kind": "mfcc", "n_bins": 20, "compression": "none"}
    with pytest.raises(UserError, match=r"augment\.gain_db"):
        TrialConfig.from_dict(make_config(features=mfcc, augment={"gain_db": 3.0}))


def test_segment_frames_rounds_seconds_at_the_frame_rate():
    config = TrialConfig.from_dict(make_config(training={"segment_seconds": 3.0}))
    assert config.segment_frames == round(3.0 * 22050 / 512) == 129


# --- schedules and segments (pure functions) ----------------------------------------------------


def test_plateau_reduces_after_patience_epochs_without_improvement():
    state = Plateau()
    for loss in (1.0, 0.9, 0.95, 0.95):  # two bad epochs with patience 1: one reduction
        state = plateau_update(state, loss, factor=0.5, patience=1)
    assert (state.best, state.scale, state.bad_epochs) == (0.9, 0.5, 0)


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_annealing_schedules_end_at_min_lr(name):
    schedule = Schedule(ScheduleConfig(name=name), 0.1, 1e-4, steps_per_epoch=100, max_epochs=5)
    rates = [schedule.lr(step) for step in range(500)]
    assert max(rates) == pytest.approx(0.1, rel=1e-3) and min(rates) >= 1e-4
    assert 1e-4 <= rates[-1] < 1.1e-4


def test_warmup_ramps_linearly():
    schedule = Schedule(ScheduleConfig(name="none", warmup_epochs=2), 1.0, 0.0, steps_per_epoch=5, max_epochs=10)
    rates = [schedule.lr(step) for step in range(12)]
    assert rates[:10] == pytest.approx([(s + 1) / 10 for s in range(10)]) and rates[10:] == [1.0, 1.0]


def test_step_schedule_multiplies_by_factor_every_step_size_epochs_and_stops_below_min_lr():
    config = ScheduleConfig(name="step", factor=0.5, step_size=2)
    schedule = Schedule(config, 0.1, 0.02, steps_per_epoch=3, max_epochs=20)
    per_epoch = [[schedule.lr(epoch * 3 + step) for step in range(3)] for epoch in range(8)]
    expected = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert per_epoch == [pytest.approx([rate] * 3) for rate in expected]
    assert [schedule.ends_training(epoch * 3) for epoch in range(8)] == [False] * 6 + [True] * 2


def test_plateau_rate_follows_the_plateau_scale_only():
    schedule = Schedule(ScheduleConfig(name="plateau"), 0.1, 1e-3, steps_per_epoch=4, max_epochs=5)
    assert [schedule.lr(step, 0.2) for step in (0, 7, 19)] == pytest.approx([0.02] * 3)
    assert not schedule.ends_training(12, 0.02) and schedule.ends_training(12, 0.002)


def test_weight_decay_shrinks_weights_but_not_biases_or_norm_scales():
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(8, 2))
    model[1].weight.data.uniform_(0.5, 1.5)  # norm scales start at exactly 1 otherwise
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = make_optimizer(model, OptimizerConfig(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.1))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no data gradient: only the decay moves anything
    optimizer.step()
    decayed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert decayed == {"0.weight", "3.weight"}  # kernels and matrices; not biases, not 1.weight (norm scale)
    torch.testing.assert_close(model[0].weight, before["0.weight"] * 0.9)


def test_eval_segments_cover_each_clip_with_the_last_aligned_to_its_end():
    clips, starts = eval_segments(np.array([8, 7, 3]), segment_frames=4, overlap=0.5)
    assert clips.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert starts.tolist() == [0, 2, 4, 0, 2, 3, 0]


def test_random_crops_stay_inside_each_clip():
    lengths = np.array([50, 10, 200])
    clips, starts = random_crops(lengths, 40, 100, torch.Generator().manual_seed(0))
    assert sorted(clips.tolist()) == [0] * 100 + [1] * 100 + [2] * 100
    ends = starts + 40
    assert bool((starts >= 0).all()) and bool((ends <= torch.as_tensor(np.maximum(lengths, 40))[clips]).all())
    assert starts[clips == 1].eq(0).all() and starts[clips == 2].max() > 100  # spread over the clip


# --- evaluation --------------------------------------------------------------------------------


class SumOverTime(nn.Module):
    """Fake model: the logit of class k is the sum of bin k over the segment's frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=2)


def test_evaluate_clips_averages_segment_probabilities_per_clip():
    rng = np.random.default_rng(0)
    lengths = np.array([8, 7, 3])
    raw = rng.normal(size=(3, 3, 9)).astype(np.float16)
    split = SplitArrays.of_clips([clip[:, :length] for clip, length in zip(raw, lengths)], [0, 1, 2], ("a", "b", "c"))
    mean, std = np.array([0.5, -0.2, 0.1], np.float32), np.array([2.0, 1.0, 0.5], np.float32)
    result = evaluate_clips(SumOverTime(), split, mean, std, segment_frames=4, overlap=0.5, device="cpu", min_frames=1)

    normalised = (raw.astype(np.float64) - mean[:, None]) / std[:, None]
    expected, losses, correct = [], [], []
    for clip, starts in enumerate([[0, 2, 4], [0, 2, 3], [0]]):
        frames = min(4, lengths[clip])  # the 3-frame clip is one segment of its own, not padded
        logits = np.stack([normalised[clip, :, s : s + frames].sum(axis=1) for s in starts])
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        expected.append(probs.mean(axis=0))
        losses.append(-np.log(probs[:, clip]).mean())
        correct += list(probs.argmax(axis=1) == clip)
    expected = np.stack(expected)
    np.testing.assert_allclose(result.clip_probs, expected, rtol=1e-4, atol=1e-6)
    assert result.clip_acc == pytest.approx(np.mean(expected.argmax(axis=1) == [0, 1, 2]))
    assert result.segment_acc == pytest.approx(np.mean(correct))
    assert result.loss == pytest.approx(np.mean(losses), rel=1e-4)


def test_clip_probabilities_need_no_labels():
    data = make_data(per_class=(1, 1))
    model = models.build_model("cnn1d", SMALL_MODEL["params"], N_BINS, N_CLASSES).eval()
    shortest = models.min_frames("cnn1d", SMALL_MODEL["params"])
    labelled = evaluate_clips(model, data.valid, data.mean, data.std, 43, 0.5, min_frames=shortest)
    unknown = replace(data.valid, labels=np.full(len(data.valid), NO_LABEL))  # an index nothing may read
    prepared = prepare_split(unknown, data.mean, data.std, torch.device("cpu"), shortest)
    np.testing.assert_array_equal(predict_clips(model, prepared, 43, 0.5), labelled.clip_probs)


# --- saved models --------------------------------------------------------------------------------


def test_saved_model_round_trips_and_classifies_like_the_evaluation(data, tmp_path: Path):
    config = TrialConfig.from_dict(make_config(training={"max_epochs": 1}))
    result = fit(config, data, device="cpu")
    save_model(tmp_path / "m.pt", result.best_state, config, data.classes, (data.mean, data.std), {"seed": 0})
    saved = load_model(tmp_path / "m.pt")
    assert saved.config == config and saved.classes == data.classes and saved.about == {"seed": 0}
    expected = evaluate_clips(
        result.model, data.valid, data.mean, data.std, config.segment_frames, 0.5, min_frames=config.min_frames
    )
    for clip in (0, 3):  # clip 0 is shorter than a segment
        np.testing.assert_allclose(saved.probabilities(data.valid.clip(clip)), expected.clip_probs[clip], rtol=1e-5)


def test_models_import_neither_training_nor_features():
    script = (
        "import importlib, pkgutil, sys, models\n"
        "for module in pkgutil.iter_modules(models.__path__): importlib.import_module(f'models.{module.name}')\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'training', 'features', 'search', 'reporting'}))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- fit -----------------------------------------------------------------------------------------


def test_fit_learns(data):
    result = fit(make_config(training={"max_epochs": 5}), data, device="cpu")
    assert [m.epoch for m in result.history] == [1, 2, 3, 4, 5]
    assert result.history[-1].train_acc > 0.5  # chance is 1/8
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.best.valid_clip_acc == max(m.valid_clip_acc for m in result.history)
    assert result.stop_reason == "max_epochs"
    assert all(t.device.type == "cpu" for t in result.best_state.values())


def test_callback_returning_true_stops_after_that_epoch(data):
    seen = []

    def stop_at_two(metrics: EpochMetrics, state: TrainingState) -> bool | None:
        seen.append(metrics.epoch)
        return True if metrics.epoch == 2 else None  # None: go on

    result = fit(make_config(training={"max_epochs": 5}), data, stop_at_two, device="cpu")
    assert seen == [1, 2] and [m.epoch for m in result.history] == [1, 2]
    assert result.stop_reason == "callback"
    full = fit(make_config(training={"max_epochs": 5}), data, device="cpu")
    assert curves(result.history) == curves(full.history[:2])  # stopping changes nothing before it


def test_fit_without_validation_never_reads_the_valid_split(data):
    unreadable = SplitArrays(np.zeros((0, 3), np.float16), np.zeros(0, np.int32), np.zeros(0, np.int64), ())
    # A rate too small to learn: the training loss moves by chance, so some epochs do not improve it.
    config = make_config(
        optimizer={"name": "sgd", "lr": 1e-9},
        schedule={"name": "plateau", "patience": 0, "factor": 0.5},
        training={"max_epochs": 6, "min_lr": 1e-12},
    )
    result = fit(config, replace(data, valid=unreadable), device="cpu", validate=False)
    assert all(m.valid_loss is m.valid_clip_acc is m.valid_segment_acc is None for m in result.history)
    assert result.best_epoch == 6 and result.stop_reason == "max_epochs"
    for key, value in result.model.state_dict().items():
        assert torch.equal(result.best_state[key], value.cpu()), key  # the last weights are kept
    # The plateau schedule watches the training loss, the only loss such a run has.
    plateau, rates = Plateau(), []
    for metrics in result.history:
        rates.append(1e-9 * plateau.scale)
        plateau = plateau_update(plateau, metrics.train_loss, factor=0.5, patience=0)
    assert [m.lr for m in result.history] == pytest.approx(rates) and min(rates) < 1e-9


def test_same_seed_gives_identical_metrics(data):
    config = make_config(augment={"time_masks": 1, "time_mask_frames": 8, "mixup_alpha": 0.3})
    first, second = fit(config, data, device="cpu"), fit(config, data, device="cpu")
    assert curves(first.history) == curves(second.history)
    other = fit(make_config(augment=config["augment"], training={"seed": 1}), data, device="cpu")
    assert curves(other.history) != curves(first.history)


def test_fit_leaves_the_callers_random_state_alone(data):
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    fit(make_config(training={"max_epochs": 1}), data, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_callback_runs_once_per_epoch_with_a_saveable_state(data, tmp_path: Path):
    seen: list[tuple[int, int]] = []

    def on_epoch_end(metrics: EpochMetrics, state: TrainingState) -> None:
        seen.append((metrics.epoch, state.epoch))
        state.save(tmp_path / "state.pt")

    fit(make_config(training={"max_epochs": 3}), data, on_epoch_end, device="cpu")
    assert seen == [(1, 1), (2, 2), (3, 3)]
    loaded = TrainingState.load(tmp_path / "state.pt")  # weights_only=True inside
    assert loaded.epoch == 3 and len(loaded.history) == 3


def test_resume_continues_exactly(data, tmp_path: Path):
    config = make_config(
        model={"params": {"depth": 2, "channels": 16, "dropout": 0.5}},
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
        schedule={"name": "plateau", "patience": 0, "factor": 0.5},
        training={"max_epochs": 4, "min_lr": 1e-6},
        augment={"freq_masks": 1, "freq_mask_bins": 8, "mixup_alpha": 0.4, "gain_db": 3.0},
    )

    def save_second(metrics: EpochMetrics, state: TrainingState) -> None:
        if metrics.epoch == 2:
            state.save(tmp_path / "epoch2.pt")

    full = fit(config, data, save_second, device="cpu")
    resumed = fit(config, data, device="cpu", resume=TrainingState.load(tmp_path / "epoch2.pt"))
    assert curves(resumed.history) == curves(full.history)
    assert resumed.best_epoch == full.best_epoch
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_resume_rejects_another_model(data, tmp_path: Path):
    states: list[TrainingState] = []
    fit(make_config(training={"max_epochs": 1}), data, lambda m, s: states.append(s), device="cpu")
    other = make_config(model={"params": {"depth": 3, "channels": 16}})
    with pytest.raises(UserError, match=r"resume: the checkpoint's model\.params\.depth \(2\) differs .* \(3\)"):
        fit(other, data, device="cpu", resume=states[0])


def test_impossible_model_fails_before_any_epoch(data):
    calls = []
    config = make_config(model={"arch": "cnn2d", "params": {"depth": 8}}, training={"segment_seconds": 0.5})
    with pytest.raises(UserError, match=r"model\.params\.depth") as raised:
        fit(config, data, lambda m, s: calls.append(m), device="cpu")
    assert "22 frames" in str(raised.value) and calls == []


def test_data_of_another_feature_setting_is_rejected(data):
    config = make_config(features={"hop_length": 256})
    with pytest.raises(UserError, match="features"):
        fit(config, data, device="cpu")


def test_nan_loss_stops_with_the_epoch_named(data, monkeypatch):
    build = models.build_model

    def build_poisoned(*args, **kwargs) -> nn.Module:
        model = build(*args, **kwargs)
        calls = {"n": 0}

        def poison(module, inputs, output):
            calls["n"] += 1
            return output * math.nan if module.training and calls["n"] > 6 else output

        model.register_forward_hook(poison)
        return model

    monkeypatch.setattr(models, "build_model", build_poisoned)
    epochs = []
    config = make_config(training={"max_epochs": 5})  # 6 steps per epoch: epoch 2 goes bad
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2: training loss is nan.*optimizer\.lr"):
        fit(config, data, lambda m, s: epochs.append(m.epoch), device="cpu")
    assert epochs == [1]


def test_huge_learning_rate_diverges(data):
    config = make_config(optimizer={"name": "sgd", "lr": 1e30, "momentum": 0.9}, training={"max_epochs": 5})
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch \d"):
        fit(config, data, device="cpu")


def test_plateau_stops_when_the_rate_falls_below_min_lr(data):
    # No batch norm, no dropout and a rate too small to move the loss: validation never improves.
    model = {"arch": "cnn2d", "params": {"depth": 2, "channels": 4, "batch_norm": False, "dropout": 0.0}}
    config = make_config(
        model=model,
        optimizer={"lr": 1e-9},
        schedule={"name": "plateau", "patience": 0, "factor": 0.1},
        training={"min_lr": 5e-10, "max_epochs": 20},
    )
    result = fit(config, data, device="cpu")
    assert result.stop_reason == "min_lr"
    assert len(result.history) == 2


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_each_optimizer_runs(data, name):
    config = make_config(
        optimizer={"name": name, "lr": 1e-3, "weight_decay": 1e-4, "l1": 1e-6}, training={"max_epochs": 1}
    )
    (metrics,) = fit(config, data, device="cpu").history
    assert math.isfinite(metrics.train_loss) and metrics.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("name", ["plateau", "cosine", "onecycle", "step", "none"])
def test_each_schedule_sets_the_rate_of_every_step(data, name):
    config = TrialConfig.from_dict(
        make_config(schedule={"name": name, "step_size": 1, "warmup_epochs": 1}, training={"max_epochs": 2})
    )
    history = fit(config, data, device="cpu").history
    steps = len(data.train) * config.training.segments_per_clip // config.training.batch_size
    schedule = Schedule.of(config, steps)  # no plateau reduction within 2 epochs (patience 3)
    assert [m.lr for m in history] == pytest.approx([schedule.lr(steps - 1), schedule.lr(2 * steps - 1)])


def test_all_augmentations_run(data):
    augment = {"time_masks": 2, "time_mask_frames": 10, "freq_masks": 2, "freq_mask_bins": 8}
    config = make_config(augment={**augment, "mixup_alpha": 0.4, "gain_db": 6.0}, training={"max_epochs": 1})
    (metrics,) = fit(config, data, device="cpu").history
    assert math.isfinite(metrics.train_loss)


def test_homework_baseline_config_runs():
    config = TrialConfig.from_dict(HOMEWORK_BASELINE)
    assert config.segment_frames == 1024
    data = make_data(FeatureSetting.from_dict(HOMEWORK_BASELINE["features"]), n_frames=1100, per_class=(1, 1))
    one_epoch = copy.deepcopy(HOMEWORK_BASELINE)
    one_epoch["training"]["max_epochs"] = 1
    (metrics,) = fit(one_epoch, data, device="cpu").history
    assert math.isfinite(metrics.train_loss) and 0.0 <= metrics.valid_clip_acc <= 1.0


# --- precision -------------------------------------------------------------------------------------


def watch_output_dtypes(monkeypatch) -> set[torch.dtype]:
    """The dtypes of every forward pass's logits of models built from now on."""
    build, seen = models.build_model, set()

    def build_and_watch(*args):
        model = build(*args)
        model.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
        return model

    monkeypatch.setattr(models, "build_model", build_and_watch)
    return seen


def test_bf16_runs_forward_passes_in_bfloat16_and_learns_on_the_cpu(data, monkeypatch):
    seen = watch_output_dtypes(monkeypatch)
    result = fit(make_config(training={"max_epochs": 5, "precision": "bf16"}), data, device="cpu")
    assert seen == {torch.bfloat16}  # training and validation alike
    assert result.history[-1].train_acc > 0.5  # chance is 1/8
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert all(t.dtype == torch.float32 for t in result.best_state.values() if t.is_floating_point())


def test_fp32_runs_every_forward_pass_in_float32(data, monkeypatch):
    seen = watch_output_dtypes(monkeypatch)
    fit(make_config(training={"max_epochs": 1, "precision": "fp32"}), data, device="cpu")
    assert seen == {torch.float32}


def test_bf16_on_a_gpu_without_bfloat16_units_fails_in_one_line_before_training(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    why = r"^training\.precision: 'bf16' is not supported by this GPU \(Tesla T4\); use fp32$"
    with pytest.raises(UserError, match=why):
        fit(make_config(training={"precision": "bf16"}), data, device="cuda")
    check_precision("fp32", torch.device("cuda"))  # fp32 asks nothing of the GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fit_on_cuda_follows_the_cpu_run(data, tmp_path: Path):
    # No dropout: then the model's initialisation (on the CPU) and every crop and augmentation draw
    # (CPU generators) are shared, and only floating-point details differ between the devices.
    augment = {"time_masks": 1, "time_mask_frames": 8, "mixup_alpha": 0.3, "gain_db": 3.0}
    config = make_config(model={"params": {"depth": 2, "channels": 16, "dropout": 0.0}}, augment=augment)
    config["training"]["max_epochs"] = 3
    states: list[TrainingState] = []
    cpu = fit(config, data, device="cpu")
    gpu = fit(config, data, lambda m, s: states.append(s), device="cuda")
    assert next(gpu.model.parameters()).is_cuda
    for on_cpu, on_gpu in zip(cpu.history, gpu.history):
        assert on_gpu.train_loss == pytest.approx(on_cpu.train_loss, rel=0.05)
    assert all(t.device.type == "cpu" for t in states[0].model.values())
    states[0].save(tmp_path / "state.pt")
    resumed = fit(config, data, device="cuda", resume=TrainingState.load(tmp_path / "state.pt"))
    assert [m.epoch for m in resumed.history] == [1, 2, 3]
    assert resumed.history[-1].train_loss == pytest.approx(gpu.history[-1].train_loss, rel=0.05)
    on_gpu = evaluate_clips(gpu.model, data.valid, data.mean, data.std, 43, 0.5, min_frames=config.min_frames)
    assert on_gpu.clip_acc == pytest.approx(gpu.history[-1].valid_clip_acc)
