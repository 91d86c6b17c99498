"""Peers benchmark (issue 19): genre-search's search against what a user would otherwise run, at an
equal epoch budget on the same machine, each with several search seeds.

    python -m tests.bench.bench_peers [--out DIR (bench-out/peers)] [--data DIR] [--epoch-budget N] [--seeds N]
                                      [--retrain-seeds N] [--pruner median|hyperband] [--systems A,B,...]
                                      [--records ARCHIVE ...] [--retrain-json FILE] [--smoke]

The systems, all on the default space (spaces/cnn2d.yaml), its stores and the one `fit()`:
  ours          genre-search as shipped: Optuna's TPE and ASHA through Ray Tune (search/runner.py)
  ray-random    Ray Tune's first choice: random search and the same ASHA, the same runner (with the
                same seed, its first trials are ours': TPE starts with Optuna's seeded random draws)
  optuna-tpe    a plain Optuna script without Ray: TPE and Optuna's pruner, 2 worker processes
                sharing a journal-file study
  grid          the homework's way: segment 3/5 s x SGD/Adam x 3 learning rates, every trial to the
                end, 2 worker processes, in an order shuffled by the search seed
Every system trains its trials with the space's `training.seed` (0), whatever the search seed, so
that a config gets the same training draw in every system. When `--systems` names them, variants:
of ours with other search settings (VARIANTS), the evidence for changing ours' defaults: ours-first1
queues only the first of the space file's two first trials (the default before 2026-12-05),
ours-nofirst none; ours-joint is ours with TPE's multivariate, group and constant-liar options,
ours-grace1 ours with ASHA's first rung at epoch 1 (the default before 2026-12-04),
ours-joint-grace1 both (these three without first trials); and ours-seeded and grid-seeded
(SEEDED_TRAINING, GRID_VARIANTS), whose trials train with the search seed instead (the grid's way until 2026-12-07).

The budget: `--epoch-budget`, else the most epochs `ours` used over its seeds as shipped (it runs
first); every other system stops there. Each epoch of each trial is recorded (when it ended, its
validation clip accuracy); the anytime curves, the epochs each system needs to reach another's final
best, and the figure come from those records (tests/bench/anytime.py). Each system's best config
(over its seeds) is retrained with `--retrain-seeds` seeds by report.py's code (reporting/retrain.py),
the only code that opens the test split.

Writes under --out: records/<system>-seed<k>.csv (one row per epoch, with the curve) and .json
(budget, wall time, best trial and every trial's config), retrain.json, summary.csv, anytime.png.
A (system, seed) whose JSON is there with the same budget is read back, not run again, and so is a
retraining of the same config and seed, so a long run that was cut off continues.
`--records` unpacks archives of records (docs/peers/records-*.tar.xz: records/... as written here)
into --out first, and `--retrain-json` puts a retrain.json there (docs/peers/retrain.json), so that
a committed run is read back and its summary.csv and figure written again without training.
`--smoke` runs everything on a tiny synthetic set in minutes.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import random
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import optuna
import pandas as pd
import ray
import torch
import yaml
from sklearn.model_selection import ParameterGrid

from features.arrays import FitData
from features.store import FeatureStore
from reporting.retrain import Retraining, load_test_split, train_standard
from reporting.trials import load_trials
from search.runner import SearchRequest, build_space_stores, run_search
from search.space import load_space
from search.space_file import SPACES_DIR
from tests.bench import anytime
from training import TrialConfig, fit
from training.config import trial_config

# The grid's fixed values (parameter names as the space's Optuna trials name them); its axes are
# the homework's suggestions: segment length, optimizer and a few learning rates.
GRID_AXES = {
    "training.segment_seconds": [3.0, 5.0],
    "optimizer.name": ["sgd", "adam"],
    "optimizer.lr": [1e-3, 3e-3, 1e-2],
}
GRID_FIXED = {
    "features.hop_length": 512,
    "model.cnn2d.depth": 4,
    "model.cnn2d.channels": 16,
    "model.cnn2d.growth": 2.0,
    "model.cnn2d.dropout": 0.3,
    "model.cnn2d.global_pool": "avg",
    "optimizer.weight_decay": 1e-4,
    "optimizer.sgd.momentum": 0.9,
    "optimizer.sgd.nesterov": False,
    "schedule.name": "plateau",  # the homework's schedule
    "augment.time_masks": 0,
    "augment.freq_masks": 0,
    "augment.mixup_alpha": 0.0,
}
SYSTEMS = ("ours", "ray-random", "optuna-tpe", "grid")
GRID_VARIANTS = ("grid-seeded",)  # the grid trained at the search seed (SEEDED_TRAINING)
# Variants of ours, each one change of its search settings, measured beside the peers: with one
# first trial (the recipe at 3 s: the default before the 5 s one was queued too) or none; TPE's
# options for a conditional space searched two trials at a time; ASHA's first rung at epoch 1, the
# default until the records showed it stopping half the trials on accuracies near chance, which
# predict a trial's best far worse than epoch 4's (Spearman 0.14 against 0.56). The last three were
# measured before any first trial was shipped, so they run without one.
NO_FIRST = {"first_trials": []}
# The recipe the space file queues first (the grid's centre), with 3 s segments.
RECIPE = {key: value for key, value in GRID_FIXED.items() if not key.startswith("optimizer.sgd.")}
RECIPE.update({"optimizer.name": "adam", "optimizer.lr": 3e-3, "training.segment_seconds": 3.0})
VARIANTS = {
    "ours-first1": {"first_trials": [RECIPE]},
    "ours-nofirst": NO_FIRST,
    "ours-startup5": {"tpe_startup_trials": 5},
    "ours-seeded": {},
    "ours-joint": {**NO_FIRST, "tpe_multivariate": True, "tpe_constant_liar": True},
    "ours-grace1": {**NO_FIRST, "grace_period": 1},
    "ours-joint-grace1": {**NO_FIRST, "tpe_multivariate": True, "tpe_constant_liar": True, "grace_period": 1},
}
# Variants whose trials train with the search seed (the others train with the space's
# training.seed, 0, in every search): each search of the same configs is another training draw.
SEEDED_TRAINING = {"ours-seeded", "grid-seeded"}
VARIANT_NAMES = (*VARIANTS, *GRID_VARIANTS)
WORKERS = 2  # trials at once in every system: the Ray searches' 2 slots of 1 CPU on 2 cores


@dataclass(frozen=True)
class Bench:
    space: Path  # the space file every system searches (a copy of cnn2d.yaml, smaller with --smoke)
    data: str | None
    out: Path
    seeds: tuple[int, ...]
    retrain_seeds: int
    pruner: str
    systems: tuple[str, ...] = SYSTEMS
    budget: int | None = None  # None until `ours` has run, without --epoch-budget


@dataclass(frozen=True)
class SearchRecords:
    """One search: its epochs (anytime.RECORD_COLUMNS), its trials' configs, its wall time."""

    records: pd.DataFrame
    configs: dict[str, dict[str, Any]]
    wall_seconds: float


# --- the Ray Tune systems ----------------------------------------------------------------------


def ray_search(bench: Bench, seed: int, system: str, storage: Path) -> SearchRecords:
    """ours, a variant of it, or ray-random (random) through the project's runner. Without a
    budget, the shipped search as it is; with one, trials enough to spend it and the runner's
    EpochBudget."""
    raw = yaml.safe_load(bench.space.read_text())
    searcher = "random" if system == "ray-random" else "tpe"
    raw["search"].update(seed=seed, searcher=searcher, **VARIANTS.get(system, {}))
    if system in SEEDED_TRAINING:
        raw["training"]["seed"] = seed
    if bench.budget is not None:
        raw["search"].update(num_samples=bench.budget, epoch_budget=bench.budget)
    space = storage / f"{searcher}-seed{seed}.yaml"
    space.write_text(yaml.safe_dump(raw))
    started = time.time()
    try:
        folder = run_search(SearchRequest(space=str(space), data=bench.data, storage=str(storage))).local_dir
    finally:
        ray.shutdown()
    wall = time.time() - started
    trials = load_trials(folder, int(raw["search"]["max_epochs"]))
    rows = [_ray_epochs(name, history, started) for name, history in trials.histories.items() if not history.empty]
    configs = {name: trial_config(config) for name, config in trials.configs.items()}
    return SearchRecords(pd.concat(rows, ignore_index=True), configs, wall)


def _ray_epochs(trial: str, history: pd.DataFrame, started: float) -> pd.DataFrame:
    """A Ray trial's epochs with the wall time each ended: Ray's `timestamp` is whole seconds, so
    the trial's start is estimated from all its rows (timestamp - time_total_s, the latest) and
    each epoch ends at that start plus its `time_total_s`."""
    start = float((history["timestamp"] - history["time_total_s"]).max())
    return pd.DataFrame(
        {
            "trial": trial,
            "epoch": history["training_iteration"].astype(int),
            "seconds": start + history["time_total_s"] - started,
            "valid_clip_acc": history["valid_clip_acc"].astype(float),
        }
    )


# --- the systems without Ray: trials in worker processes -----------------------------------------


@dataclass(frozen=True)
class PoolJob:
    """What a worker process needs: the space, the stores, the shared records and the budget."""

    space: str
    stores: dict[str, str]  # feature setting name -> store path
    started: float  # time.time() when the search started
    budget: int


@functools.cache
def _fit_data(path: str) -> FitData:
    """A store's train and valid splits, loaded once per worker process."""
    return FeatureStore(Path(path)).load_fit_data()


def _fit_recorded(job: PoolJob, key: str, config: dict, records: Any, also: Callable | None = None) -> float:
    """One trial: `fit()` with every epoch appended to the shared `records`, stopped once the
    records hold the budget; `also(metrics)` runs after each epoch (Optuna's report and prune)."""
    trial = TrialConfig.from_dict(config)
    torch.set_num_threads(1)  # one core per trial, as the Ray searches' cpus_per_trial

    def on_epoch_end(metrics, state) -> bool:
        records.append((key, metrics.epoch, time.time() - job.started, metrics.valid_clip_acc))
        if len(records) >= job.budget:
            return True
        if also is not None:
            also(metrics)
        return False

    return fit(trial, _fit_data(job.stores[trial.features.name]), on_epoch_end).best.valid_clip_acc


def optuna_worker(job: PoolJob, journal: str, study_name: str, seed: int, pruner: str, records, configs) -> None:
    """One process of the plain Optuna script: TPE (its defaults) and Optuna's pruner on a study
    shared through a journal file, trials until the records hold the budget."""
    space = load_space(job.space)
    study = optuna.load_study(
        study_name=study_name,
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal)),
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner() if pruner == "hyperband" else optuna.pruners.MedianPruner(),
    )

    def objective(trial: optuna.Trial) -> float:
        key = f"trial{trial.number:03d}"
        configs[key] = config = space.suggest(trial)

        def report(metrics) -> None:
            trial.report(metrics.valid_clip_acc, metrics.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return _fit_recorded(job, key, config, records, report)

    def stop_at_budget(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if len(records) >= job.budget:
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if len(records) < job.budget:
        study.optimize(objective, callbacks=[stop_at_budget])


def grid_trial(job: PoolJob, key: str, config: dict, records) -> None:
    if len(records) < job.budget:
        _fit_recorded(job, key, config, records)


def grid_configs(space_path: str, seed: int, seeded_training: bool) -> dict[str, dict[str, Any]]:
    """The grid's configs, drawn from the space itself through Optuna's FixedTrial, in an order
    shuffled by the search seed (which also seeds each trial's training when `seeded_training`)."""
    space = load_space(space_path)
    points = list(ParameterGrid(GRID_AXES))
    random.Random(seed).shuffle(points)
    configs = {}
    for point in points:
        config = space.suggest(optuna.trial.FixedTrial({**GRID_FIXED, **point}))
        if seeded_training:
            config["training"]["seed"] = seed
        name = f"{point['optimizer.name']}-lr{point['optimizer.lr']:g}-{point['training.segment_seconds']:g}s"
        configs[name] = config
    return configs


def pool_search(bench: Bench, seed: int, system: str, storage: Path) -> SearchRecords:
    """optuna-tpe or a grid: WORKERS processes (spawned: no forked torch state) share the records."""
    stores = {setting.name: str(path) for setting, path in build_space_stores(_request(bench)).items()}
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        records, configs = manager.list(), manager.dict()
        job = PoolJob(str(bench.space), stores, time.time(), bench.budget)
        with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
            if system in ("grid", *GRID_VARIANTS):
                configs.update(grid_configs(str(bench.space), seed, system in SEEDED_TRAINING))
                futures = [pool.submit(grid_trial, job, key, config, records) for key, config in configs.items()]
            else:
                journal, name = str(storage / f"optuna-seed{seed}.journal"), f"optuna-seed{seed}"
                optuna.create_study(
                    study_name=name,
                    direction="maximize",
                    storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal)),
                )
                # Each process its own sampler seed: the same one would propose the same first trials twice.
                seeds = [seed * 1000 + worker for worker in range(WORKERS)]
                futures = [
                    pool.submit(optuna_worker, job, journal, name, s, bench.pruner, records, configs) for s in seeds
                ]
            for future in futures:
                future.result()
        wall = time.time() - job.started
        frame = pd.DataFrame(list(records), columns=list(anytime.RECORD_COLUMNS))
        return SearchRecords(frame, dict(configs), wall)


def _request(bench: Bench) -> SearchRequest:
    return SearchRequest(space=str(bench.space), data=bench.data)


# --- running, saving, reading back ---------------------------------------------------------------


def run_system(bench: Bench, system: str, seed: int) -> SearchRecords:
    with tempfile.TemporaryDirectory(prefix=f"peers-{system}-") as storage:
        if system in ("ours", "ray-random", *VARIANTS):
            return ray_search(bench, seed, system, Path(storage))
        return pool_search(bench, seed, system, Path(storage))


def searched(bench: Bench, system: str, seed: int) -> SearchRecords:
    """The search's records: read back when this budget's run is saved, else run and saved."""
    stem = bench.out / "records" / f"{system}-seed{seed}"
    saved = stem.with_suffix(".json")
    if saved.is_file() and json.loads(saved.read_text())["budget"] == bench.budget:
        print(f"{system}, search seed {seed}: read back from {saved}")
        summary = json.loads(saved.read_text())
        return SearchRecords(pd.read_csv(stem.with_suffix(".csv")), summary["configs"], summary["wall_seconds"])
    print(f"{system}, search seed {seed}: searching (budget {bench.budget or 'as shipped'} epochs)")
    result = run_system(bench, system, seed)
    save(stem, result, bench.budget)
    return result


def save(stem: Path, result: SearchRecords, budget: int | None) -> None:
    """records CSV (the epochs with the curve beside them) and JSON (budget, time, best, configs)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    ordered = result.records.sort_values(["seconds", "trial", "epoch"], kind="stable").reset_index(drop=True)
    curve = anytime.anytime_curve(ordered, len(ordered))
    ordered.assign(epochs_spent=curve["epochs_spent"], best_valid_clip_acc=curve["best_valid_clip_acc"]).to_csv(
        stem.with_suffix(".csv"), index=False
    )
    best = ordered.loc[ordered["valid_clip_acc"].idxmax()]
    summary = {
        "budget": budget,
        "epochs_spent": len(ordered),
        "wall_seconds": result.wall_seconds,
        "best_valid_clip_acc": float(best["valid_clip_acc"]),
        "best_trial": str(best["trial"]),
        "best_epoch": int(best["epoch"]),
        "configs": result.configs,
    }
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=float))


def best_config(results: list[SearchRecords], budget: int) -> dict[str, Any]:
    """The config of the best trial over a system's search seeds (best validation clip accuracy at
    any epoch within the budget, the first on ties)."""
    scored = []
    for result in results:
        within = result.records.sort_values(["seconds", "trial", "epoch"], kind="stable").head(budget)
        scored += [(float(row.valid_clip_acc), result.configs[row.trial]) for row in within.itertuples()]
    return max(scored, key=lambda pair: pair[0])[1]


# --- retraining by report.py's code --------------------------------------------------------------


def retrain(args: tuple[str, dict[str, Any], dict[str, str], int, int, str]) -> tuple[str, int, float, float]:
    """One (system, seed) retraining of a best config, as report.py does it: train, keep the best
    validation epoch, then test; returns (system, seed, valid clip acc, test clip acc)."""
    system, config, stores, max_epochs, seed, out_dir = args
    torch.set_num_threads(1)
    trial = TrialConfig.from_dict(config)
    trial = replace(trial, training=replace(trial.training, max_epochs=max_epochs))
    store = FeatureStore(Path(stores[trial.features.name]))
    job = Retraining(
        trial, store.load_fit_data(), load_test_split(store), Path(out_dir), {"system": system}, torch.device("cpu")
    )
    run = train_standard(job, seed)
    return system, seed, run.valid.clip_acc, run.test.clip_acc


def retrain_all(bench: Bench, configs: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Each system's best config retrained with `bench.retrain_seeds` seeds, two at a time; runs
    in retrain.json of the same config and seed are read back, not run again."""
    max_epochs = int(yaml.safe_load(bench.space.read_text())["search"]["max_epochs"])
    kept = _saved_retrains(bench.out / "retrain.json", configs)
    seeds = range(bench.retrain_seeds)
    missing = [(system, seed) for system in configs for seed in seeds if (system, seed) not in kept]
    runs = list(kept.values())
    if missing:  # the stores are built only when something is retrained
        stores = {setting.name: str(path) for setting, path in build_space_stores(_request(bench)).items()}
        tasks = []
        for system, seed in missing:
            out_dir = bench.out / "retrain" / system
            out_dir.mkdir(parents=True, exist_ok=True)
            tasks.append((system, configs[system], stores, max_epochs, seed, str(out_dir)))
        with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs += list(pool.map(retrain, tasks))
    runs = [run for run in runs if run[0] in configs and run[1] < bench.retrain_seeds]
    (bench.out / "retrain.json").write_text(
        json.dumps(
            {"configs": configs, "runs": [dict(zip(("system", "seed", "valid", "test"), r)) for r in runs]}, indent=1
        )
    )
    return {system: [test for name, _, _, test in runs if name == system] for system in configs}


def _saved_retrains(path: Path, configs: dict[str, dict[str, Any]]) -> dict[tuple[str, int], tuple]:
    """(system, seed) -> (system, seed, valid, test) of a saved run whose config is the one now."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    same = {
        system
        for system, config in configs.items()
        if json.dumps(saved["configs"].get(system), sort_keys=True) == json.dumps(config, sort_keys=True)
    }
    runs = [(run["system"], run["seed"], run["valid"], run["test"]) for run in saved["runs"]]
    return {(run[0], run[1]): run for run in runs if run[0] in same}


# --- the command ---------------------------------------------------------------------------------


def _place(target: Path, data: bytes, source: str) -> None:
    """Write `data` at `target`, which may already hold the same bytes but nothing else."""
    if target.is_file() and target.read_bytes() == data:
        return
    if target.exists():
        raise SystemExit(f"{source}: {target} exists and differs; remove it or choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def unpack_records(archive: Path, out: Path) -> int:
    """Unpack a records archive into `out`, or nothing of it when any member is not a plain file or
    folder or has an absolute path or a `..`. Returns how many files it held."""
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise SystemExit(f"{archive}: refused member {member.name!r} (absolute, '..', or not a plain file)")
        files = [member for member in members if member.isfile()]
        for member in files:
            reader = tar.extractfile(member)
            assert reader is not None  # a regular file always has one
            _place(out.joinpath(*PurePosixPath(member.name).parts), reader.read(), str(archive))
    return len(files)


def read_back_inputs(args: argparse.Namespace, out: Path) -> None:
    """--records' archives and --retrain-json's file, put into --out before anything reads it."""
    for archive in args.records or ():
        print(f"{archive}: {unpack_records(Path(archive), out)} record files unpacked into {out}")
    if args.retrain_json:
        _place(out / "retrain.json", Path(args.retrain_json).read_bytes(), args.retrain_json)


def prepared(args: argparse.Namespace) -> Bench:
    """The bench's settings; with --smoke a tiny synthetic set and a tiny search (minutes on 2 cores)."""
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((SPACES_DIR / "cnn2d.yaml").read_text())
    data, seeds, retrain_seeds = args.data, tuple(range(args.seeds)), args.retrain_seeds
    if args.smoke:
        from features import synthetic

        data = data or str(out / "smoke-data")
        if not Path(data).is_dir():
            synthetic.generate_dataset(Path(data), clips_per_genre=5, seconds=6.0)
        raw["search"].update(num_samples=3, max_epochs=2, grace_period=1)
        seeds, retrain_seeds = seeds[:1], 1
    space = out / "space.yaml"
    space.write_text(yaml.safe_dump(raw))
    return Bench(space, data, out, seeds, retrain_seeds, args.pruner, args.systems, args.epoch_budget)


def run_all(bench: Bench) -> tuple[Bench, dict[str, list[SearchRecords]]]:
    """Every system and seed, in `bench.systems`' order; without --epoch-budget `ours` runs first
    and its largest use of epochs as shipped is every other system's budget."""
    results = {}
    if bench.budget is None:
        results["ours"] = [searched(bench, "ours", seed) for seed in bench.seeds]
        bench = replace(bench, budget=max(len(result.records) for result in results["ours"]))
        print(f"budget: {bench.budget} epochs (the most ours used as shipped over its seeds)")
    for system in bench.systems:
        if system not in results:
            results[system] = [searched(bench, system, seed) for seed in bench.seeds]
    return bench, results


def report(bench: Bench, results: dict[str, list[SearchRecords]], tests: dict[str, list[float]]) -> None:
    """The printed table, summary.csv and anytime.png."""
    curves = {
        system: [anytime.anytime_curve(result.records, bench.budget) for result in runs]
        for system, runs in results.items()
    }
    bands = {
        system: anytime.seed_bands([anytime.best_by_epoch(curve, bench.budget) for curve in runs])
        for system, runs in curves.items()
    }
    finals = {
        system: [float(curve["best_valid_clip_acc"].iloc[-1]) for curve in runs] for system, runs in curves.items()
    }
    seconds = {system: [result.wall_seconds for result in runs] for system, runs in results.items()}
    table = anytime.summary_table(bands, finals, seconds, tests, bench.budget)
    table.to_csv(bench.out / "summary.csv")
    anytime.draw(bands, curves, bench.out / "anytime.png", peers=SYSTEMS)
    seeds = f"{len(bench.seeds)} search seed(s), {bench.retrain_seeds} retrain seed(s)"
    print(f"\nbudget {bench.budget} epochs per search, {seeds}")
    print("'to reach X': epochs (share of the budget) the system's mean curve needs to reach X's final mean best")
    print(anytime.format_table(table, bench.budget))
    print(f"\nwrote {bench.out / 'summary.csv'}, {bench.out / 'anytime.png'}, {bench.out / 'records'}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench-out/peers", help="results folder (default: bench-out/peers)")
    parser.add_argument("--data", help="dataset root (default: the built-in synthetic set)")
    parser.add_argument("--epoch-budget", type=int, help="epochs per search (default: what ours uses as shipped)")
    parser.add_argument("--seeds", type=int, default=3, help="search seeds per system (default 3)")
    parser.add_argument("--retrain-seeds", type=int, default=3, help="retraining seeds of each best config (default 3)")
    parser.add_argument("--pruner", choices=("median", "hyperband"), default="median", help="optuna-tpe's pruner")
    parser.add_argument(
        "--systems",
        type=lambda text: tuple(text.split(",")),
        default=SYSTEMS,
        help=f"comma-separated, in the table's order (default {','.join(SYSTEMS)}; also: {','.join(VARIANT_NAMES)})",
    )
    parser.add_argument(
        "--records",
        nargs="+",
        metavar="ARCHIVE",
        help="archives of records (docs/peers/records-*.tar.xz) unpacked into --out first, to be read back",
    )
    parser.add_argument(
        "--retrain-json", metavar="FILE", help="a retrain.json (docs/peers/retrain.json) put into --out first"
    )
    parser.add_argument("--smoke", action="store_true", help="everything end to end on a tiny set, in minutes")
    args = parser.parse_args()
    for path in [*(args.records or ()), *([args.retrain_json] if args.retrain_json else [])]:
        if not Path(path).is_file():
            parser.error(f"no such file: {path}")
    known = [*SYSTEMS, *VARIANT_NAMES]
    unknown = sorted(set(args.systems) - set(known))
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    if args.epoch_budget is None and "ours" not in args.systems:
        parser.error("--systems without ours needs --epoch-budget (ours as shipped sets the budget)")
    if args.seeds < 1 or args.retrain_seeds < 1 or (args.epoch_budget is not None and args.epoch_budget < 1):
        parser.error("--seeds, --retrain-seeds and --epoch-budget must be at least 1")
    bench = prepared(args)
    read_back_inputs(args, bench.out)
    bench, results = run_all(bench)
    configs = {system: best_config(runs, bench.budget) for system, runs in results.items()}
    tests = retrain_all(bench, configs)
    report(bench, results, tests)


if __name__ == "__main__":
    main()
