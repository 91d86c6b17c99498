"""The best config retrained from scratch, once per seed, with the search's own `fit()`, then
evaluated on validation and on the test split; set up from the experiment's files (the best trial's
saved config, the store the search trained on). This module is the only code that reads the test
split: the search (search/) gets train and valid only."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import models
from common.errors import UserError
from common.experiment import METADATA_FILE
from features.arrays import FitData, SplitArrays, concat_splits
from features.extract import build_stores
from features.layouts import open_recorded
from features.locate import cache_dir
from features.settings import FeatureSetting
from features.store import DamagedStoreError, FeatureStore
from features.writer import store_path
from models.plugins import load_named
from reporting.trials import BestTrial
from training import ClipEvaluation, EpochMetrics, TrainingState, TrialConfig, evaluate_clips, fit
from training.fit import choose_device
from training.saved_model import save_model

log = logging.getLogger(__name__)

STANDARD, MERGED = "train", "train+valid"  # what each kind of run trained on


@dataclass
class SeedRun:
    seed: int
    trained_on: str  # STANDARD or MERGED
    epoch: int  # the epoch whose weights are kept: best on validation, or the merged run's last
    test: ClipEvaluation
    valid: ClipEvaluation | None  # None for merged runs: their validation clips were training data
    history: list[EpochMetrics] = field(default_factory=list)
    model_file: Path | None = None


@dataclass(frozen=True)
class Retraining:
    """What every seed shares: the config, the data, where models go."""

    config: TrialConfig  # the best trial's, with training.max_epochs set to the search's
    data: FitData
    test: SplitArrays
    out_dir: Path
    about: dict[str, Any]  # experiment, trial, dataset: recorded in every model file
    device: torch.device

    def seeded(self, seed: int) -> TrialConfig:
        return dataclasses.replace(self.config, training=dataclasses.replace(self.config.training, seed=seed))


def prepare_retraining(
    folder: Path, metadata: dict[str, Any], best: BestTrial, out_dir: Path, plugins: tuple[str, ...] = ()
) -> tuple[Retraining, FeatureStore]:
    """The best trial's own config (never retyped), with the search's epoch limit, and its data. A
    plugin architecture needs its file among `plugins` (the user's --plugin), as recorded."""
    config = TrialConfig.from_dict(best.config)
    load_named(config.model.arch, metadata.get("plugins") or [], plugins, str(folder / METADATA_FILE))
    # The search's limit, as recorded for the experiment (every trial's training.max_epochs, ASHA's max_t).
    training = dataclasses.replace(config.training, max_epochs=int(metadata["search"]["max_epochs"]))
    config = dataclasses.replace(config, training=training)
    store = open_store(folder, metadata, config.features)
    about = {
        "experiment": metadata["name"],
        "experiment_folder": str(folder),
        "trial": best.name,
        "dataset_fingerprint": store.dataset.get("fingerprint"),
    }
    job = Retraining(
        config=config,
        data=store.load_fit_data(),
        test=load_test_split(store),
        out_dir=out_dir,
        about=about,
        device=choose_device(None),
    )
    return job, store


def store_note(store: FeatureStore, metadata: dict[str, Any]) -> str:
    """Which store the report's data came from, and whether it was built from the searched dataset."""
    ours, searched = store.dataset.get("fingerprint"), metadata["dataset"].get("fingerprint")
    if ours == searched:
        return f"`{store.path}` (built from the searched dataset: same fingerprint)"
    return f"`{store.path}`: WARNING, built from dataset {ours}, but the search ran on {searched}"


def open_store(folder: Path, metadata: dict[str, Any], setting: FeatureSetting) -> FeatureStore:
    """The store the search trained `setting` on, as listed in experiment.json, checked whole
    (test split included); rebuilt from the dataset root recorded there when the file has gone (a
    cache folder may be cleaned) or is damaged, but only inside the cache or the experiment folder:
    a record never makes the report delete or write a file anywhere else."""
    listed = (metadata.get("stores") or {}).get(setting.name)
    if listed is None:
        raise UserError(f"{folder / METADATA_FILE}: lists no feature store for {setting.name}")
    path = Path(listed)
    problem = "is gone" if not path.is_file() else _damage(path)
    if problem:
        path = _rebuildable(path, setting, folder, problem)
        root = metadata["dataset"]["root"]
        log.warning("store %s %s: rebuilding it from %s", path, problem, root)
        path.unlink(missing_ok=True)
        build_stores(open_recorded(metadata["dataset"]), [setting], path.parent)
    return FeatureStore(path)


def _rebuildable(path: Path, setting: FeatureSetting, folder: Path, problem: str) -> Path:
    """`path` resolved, when it is a store file of `setting` inside the cache folder or the
    experiment folder (links followed); else refused: experiment.json may come from someone else."""
    resolved = path.expanduser().resolve()
    inside = any(resolved.is_relative_to(Path(place).resolve()) for place in (cache_dir(), folder))
    if not inside or resolved != store_path(resolved.parent, setting):
        raise UserError(
            f"{folder / METADATA_FILE}: stores.{setting.name} = {path} {problem}, and is not a {setting.name}.h5 "
            f"inside the cache ({cache_dir()}) or the experiment folder: not rebuilt, nothing deleted"
        )
    return resolved


def _damage(path: Path) -> str | None:
    try:
        FeatureStore(path).verify(include_test=True)
    except DamagedStoreError as err:
        return f"is damaged ({err.reason})"
    return None


def load_test_split(store: FeatureStore) -> SplitArrays:
    """The one place the project reads test data: after the search, for the final numbers."""
    return store.load_split("test")


def run_seeds(job: Retraining, seeds: int, merge_train_valid: bool) -> tuple[list[SeedRun], list[SeedRun]]:
    """Standard runs (train, best validation epoch kept) for seeds 0..seeds-1, and with
    `merge_train_valid` a train+valid run per seed for that seed's chosen number of epochs."""
    standard, merged = [], []
    for seed in range(seeds):
        run = train_standard(job, seed)
        standard.append(run)
        if merge_train_valid:
            merged.append(train_merged(job, seed, run.epoch))
    return standard, merged


def train_standard(job: Retraining, seed: int) -> SeedRun:
    config = job.seeded(seed)
    with _EpochBar(f"seed {seed} ({STANDARD})", config.training.max_epochs) as bar:
        result = fit(config, job.data, bar.on_epoch_end, device=job.device)
    # The weights of the best validation epoch, as the search's ranking used that epoch too.
    model = _built(config, job.data, result.best_state, job.device)
    run = SeedRun(
        seed=seed,
        trained_on=STANDARD,
        epoch=result.best_epoch,
        valid=_evaluate(model, config, job.data.valid, job.data, job.device),
        test=_evaluate(model, config, job.test, job.data, job.device),
        history=result.history,
    )
    run.model_file = _save(job, run, config, result.best_state)
    return run


def train_merged(job: Retraining, seed: int, epochs: int) -> SeedRun:
    """Train on train+valid for `epochs` (chosen on validation by the standard run of this seed)
    and keep the last weights: no held-out data is left to choose an epoch with.

    training.max_epochs stays as searched (cosine and onecycle schedules are laid out over it, so a
    shorter limit would change every epoch's rate); the epoch callback stops the run instead. A
    run stopped earlier by its schedule (training.min_lr) keeps its last epoch."""
    config, data = job.seeded(seed), merged_fit_data(job.data)
    with _EpochBar(f"seed {seed} ({MERGED})", epochs) as bar:

        def on_epoch_end(metrics: EpochMetrics, state: TrainingState) -> bool:
            bar.on_epoch_end(metrics, state)
            return metrics.epoch >= epochs

        # The valid clips are training data here: fit() does not validate on them.
        result = fit(config, data, on_epoch_end, device=job.device, validate=False)
    test = _evaluate(result.model, config, job.test, data, job.device)  # its last epoch: best_state
    run = SeedRun(seed, MERGED, result.best_epoch, test=test, valid=None, history=result.history)
    run.model_file = _save(job, run, config, result.best_state)
    return run


def merged_fit_data(data: FitData) -> FitData:
    """Train and valid as one training split, for `fit(validate=False)`: it has no held-out clips,
    so its plateau schedule, if any, watches the training loss. Normalisation keeps the store's
    train-only statistics, which the saved model carries too."""
    return dataclasses.replace(data, train=concat_splits(data.train, data.valid))


def _built(config: TrialConfig, data: FitData, state: dict[str, torch.Tensor], device: torch.device) -> torch.nn.Module:
    model = models.build_model(config.model.arch, config.model.params, data.train.features.shape[1], len(data.classes))
    model.load_state_dict(state)
    return model.to(device).eval()


def _evaluate(
    model: torch.nn.Module, config: TrialConfig, split: SplitArrays, data: FitData, device: torch.device
) -> ClipEvaluation:
    """Clip-level accuracy exactly as the search measured validation: same segments, same overlap."""
    return evaluate_clips(
        model,
        split,
        data.mean,
        data.std,
        config.segment_frames,
        config.training.eval_overlap,
        device=device,
        min_frames=config.min_frames,
        silence=data.silence,
    )


def _save(job: Retraining, run: SeedRun, config: TrialConfig, state: dict[str, torch.Tensor]) -> Path:
    prefix = "model" if run.trained_on == STANDARD else "model-merged"
    path = job.out_dir / f"{prefix}-seed{run.seed}.pt"
    about = {**job.about, "seed": run.seed, "trained_on": run.trained_on, "epoch": run.epoch}
    save_model(path, state, config, job.data.classes, (job.data.mean, job.data.std), about)
    return path


class _EpochBar:
    """A tqdm bar per run, one step per epoch, showing the epoch's losses and validation accuracy."""

    def __init__(self, description: str, epochs: int):
        self.bar = tqdm(total=epochs, desc=description, unit="epoch", leave=True, dynamic_ncols=True)

    def on_epoch_end(self, metrics: EpochMetrics, state: TrainingState) -> None:
        shown = {"train_loss": f"{metrics.train_loss:.3f}"}
        if metrics.valid_loss is not None:  # None: a run without validation (train+valid)
            shown.update(valid_loss=f"{metrics.valid_loss:.3f}", valid_acc=f"{metrics.valid_clip_acc:.3f}")
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def __enter__(self) -> _EpochBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()
