"""Ray's and Optuna's internals the project touches (common.upstream): one test per touch, failing
with a message that names the touch and the version it was written for, so that an upgrade of
either shows at once what to change there. Then the versions' check, and the names Ray's pickles
of a search hold."""

from __future__ import annotations

import importlib
import ipaddress
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import ray
from ray import tune

from common import upstream

REPO = Path(__file__).resolve().parent.parent
WRITTEN_FOR = f"(common.upstream, written for ray {upstream.PINNED['ray']}, optuna {upstream.PINNED['optuna']})"


def broken(touch: str, what: str) -> str:
    return f"{touch}: {what} {WRITTEN_FOR}"


def test_pinned_versions_are_requirements_txt_pins() -> None:
    pins = dict(re.findall(r"^(ray|optuna)(?:\[[^]]*\])?==(\S+)$", (REPO / "requirements.txt").read_text(), re.M))
    assert pins == upstream.PINNED, "common.upstream.PINNED differs from requirements.txt: check its touches, then pin"


def test_check_versions_warns_in_one_line_naming_installed_and_pinned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    installed = dict(upstream.PINNED)
    monkeypatch.setattr(upstream.metadata, "version", lambda name: installed[name])
    with caplog.at_level(logging.WARNING, logger="common.upstream"):
        upstream.check_versions()
        assert caplog.records == []  # the pinned versions: nothing to say
        installed["ray"] = "2.61.0"
        upstream.check_versions()
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line
    assert line.startswith("ray 2.61.0, optuna 5.0.0 installed, not the pinned ray 2.60.0, optuna 5.0.0 ")


# --- Ray: a local Ray on the loopback address -----------------------------------------------


def test_ray_constant_enable_ray_cluster_keeps_a_local_ray_on_loopback() -> None:
    from ray._private import ray_constants, services

    touch = "ray._private.ray_constants.ENABLE_RAY_CLUSTER"
    assert isinstance(getattr(ray_constants, "ENABLE_RAY_CLUSTER", None), bool), broken(touch, "is gone")
    assert not ray.is_initialized()
    with upstream.ray_constant("ENABLE_RAY_CLUSTER", False):
        address = services.get_node_ip_address()
        assert ipaddress.ip_address(address).is_loopback, broken(touch, f"off no longer means loopback ({address})")
    assert ray_constants.ENABLE_RAY_CLUSTER is True, broken(touch, "was not put back")


# --- Ray Tune: the trainable's workers ----------------------------------------------------------


def test_mixins_of_a_function_trainable_reach_its_worker_class() -> None:
    from ray.tune.registry import get_trainable_cls, register_trainable

    def one_epoch(config: dict, stores: object = None) -> None:
        tune.report({"valid_clip_acc": 0.5})

    upstream.name_workers_after_trials(one_epoch)
    # As search.tuner wraps search.trainable.train_trial, and as Tuner registers it.
    trainable = tune.with_resources(tune.with_parameters(one_epoch, stores={"a": 1}), {"cpu": 1})
    register_trainable("internals_one_epoch", trainable)
    worker = get_trainable_cls("internals_one_epoch")
    touch = "__mixins__ of a function trainable"
    assert upstream.TrialNamedWorker in worker.__mro__, broken(touch, "no longer mixed into Tune's wrapper")
    assert worker.__mro__.index(upstream.TrialNamedWorker) < worker.__mro__.index(tune.Trainable), broken(
        touch, "mixed in after Trainable: its __init__ would not run first"
    )
    assert isinstance(getattr(tune.Trainable, "trial_name", None), property), broken(touch, "Trainable.trial_name")
    assert "_name" in vars(worker), broken("_name of Tune's function wrapper", "is gone")
    assert worker.__repr__(SimpleNamespace(_name="trial_x")) == "trial_x", broken(
        "_name of Tune's function wrapper", "is no longer its repr"
    )


# --- Ray Tune: the trials its callbacks get, and its snapshot of the run ---------------------------


def test_trial_statuses_and_the_attributes_progress_reads() -> None:
    from ray.tune.experiment import Trial

    statuses = (Trial.RUNNING, Trial.TERMINATED, Trial.ERROR)
    ours = (upstream.TRIAL_RUNNING, upstream.TRIAL_TERMINATED, upstream.TRIAL_ERROR)
    assert statuses == ours, broken("Trial statuses", f"are {statuses}")
    trial = Trial("one_epoch", config={"x": 1}, trial_id="abc", stub=True)
    assert upstream.ray_trial_status(trial) == Trial.PENDING, broken("Trial.status", "of a new trial")
    assert upstream.ray_trial_best(trial, "valid_clip_acc") is None, broken("Trial.metric_analysis", "before results")
    trial.update_last_result({"valid_clip_acc": 0.75, "training_iteration": 1})  # what Tune does with a result
    trial.update_last_result({"valid_clip_acc": 0.5, "training_iteration": 2})
    assert upstream.ray_trial_last_result(trial)["training_iteration"] == 2, broken("Trial.last_result", "")
    assert upstream.ray_trial_best(trial, "valid_clip_acc") == 0.75, broken("Trial.metric_analysis", "max")
    assert upstream.ray_trial_config(trial) == {"x": 1}, broken("Trial.config", "")


def test_run_snapshot_as_ray_writes_it_reads_by_trial_id_and_folder(tmp_path: Path) -> None:
    """A snapshot written by Ray's own code for trials (Trial.get_json_state), in the file Ray
    names, wrapped as TuneController.save_to_dir wraps it."""
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

    touch = "Ray Tune's run snapshot"
    pattern = TuneController.CKPT_FILE_TMPL.format("*")
    assert pattern == upstream.RUN_STATE_PATTERN, broken(touch, f"is named {pattern}")
    trial = Trial("one_epoch", config={"x": 1}, trial_id="abc", stub=True)
    trial.relative_logdir = "one_epoch_abc"  # set by Tune when the trial's folder is made
    state = {"trial_data": [list(trial.get_json_state())], "runner_data": {}, "stats": {}}
    for stamp in ("2026-12-07_09-38-59", "2026-12-07_09-39-01"):
        (tmp_path / TuneController.CKPT_FILE_TMPL.format(stamp)).write_text(json.dumps(state))
    snapshot = upstream.newest_run_state(tmp_path)
    assert snapshot is not None and snapshot.name == "experiment_state-2026-12-07_09-39-01.json"
    by_id = upstream.run_state_trials(snapshot, "trial_id")
    assert list(by_id) == ["abc"], broken(touch, "trial_data's entries have no trial_id")
    assert list(upstream.run_state_trials(snapshot, "relative_logdir")) == ["one_epoch_abc"], broken(touch, "folder")
    assert (by_id["abc"]["status"], by_id["abc"]["config"]) == ("PENDING", {"x": 1}), broken(touch, "status, config")
    assert upstream.newest_run_state(tmp_path / "none") is None


@pytest.mark.slow
def test_a_real_run_writes_the_snapshot_and_trials_the_search_reads(tmp_path: Path) -> None:
    """One trial of one epoch, run by Ray Tune for real (8 to 11 s on 2 cores, Ray's start and stop
    included): its snapshot, the trials its callbacks get, and a worker that mixes in
    TrialNamedWorker."""
    seen: list = []

    class Keep(tune.Callback):
        def on_experiment_end(self, trials: list, **info: object) -> None:
            seen.extend(trials)

    def one_epoch(config: dict) -> None:
        tune.report({"valid_clip_acc": 0.5})

    upstream.name_workers_after_trials(one_epoch)
    tuner = tune.Tuner(
        one_epoch,
        param_space={"x": 1},
        tune_config=tune.TuneConfig(num_samples=1, trial_dirname_creator=lambda trial: f"one_{trial.trial_id}"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="e", verbose=0, callbacks=[Keep()]),
    )
    with upstream.ray_constant("ENABLE_RAY_CLUSTER", False):
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        (result,) = tuner.fit()
    finally:
        ray.shutdown()
    assert result.error is None, f"the trial failed: {result.error!r} {WRITTEN_FOR}"
    (trial,) = seen
    touch = "Ray Tune's run snapshot"
    snapshot = upstream.newest_run_state(tmp_path / "e")
    assert snapshot is not None, broken(touch, f"no {upstream.RUN_STATE_PATTERN} written")
    entry = upstream.run_state_trials(snapshot, "trial_id")[trial.trial_id]
    assert entry["relative_logdir"] == f"one_{trial.trial_id}", broken(touch, "relative_logdir")
    assert (entry["status"], entry["config"]) == (upstream.TRIAL_TERMINATED, {"x": 1}), broken(touch, "status, config")
    assert upstream.ray_trial_status(trial) == upstream.TRIAL_TERMINATED, broken("Trial.status", "")
    assert upstream.ray_trial_last_result(trial)["training_iteration"] == 1, broken("Trial.last_result", "")
    assert upstream.ray_trial_best(trial, "valid_clip_acc") == 0.5, broken("Trial.metric_analysis", "")
    assert upstream.ray_trial_config(trial) == {"x": 1}, broken("Trial.config", "")


# --- Ray Tune's OptunaSearch -------------------------------------------------------------------


def one_float(trial: optuna.Trial) -> dict:
    return {"x": trial.suggest_float("x", 0.0, 1.0)}


def test_optuna_search_keeps_its_trials_and_study(tmp_path: Path) -> None:
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.sqlite'}")
    searcher = OptunaSearch(space=one_float, metric="m", mode="max", study_name="s", storage=storage)
    searcher.suggest("a")
    searcher.save_to_dir(str(tmp_path), session_str="snapshot")
    restored = OptunaSearch(space=one_float, metric="m", mode="max", study_name="s", storage=storage)
    restored.restore_from_dir(str(tmp_path))  # as ResumableOptunaSearch reads them: after a restore
    for name, found in (("new", searcher), ("restored", restored)):
        trials = upstream.optuna_search_trials(found)
        assert isinstance(trials, dict), broken("OptunaSearch._ot_trials", f"({name}) is {type(trials)}")
        assert isinstance(trials.get("a"), optuna.trial.Trial), broken("OptunaSearch._ot_trials", "by Ray trial id")
        study = upstream.optuna_search_study(found)
        assert isinstance(study, optuna.Study), broken("OptunaSearch._ot_study", f"({name}) is {type(study)}")
        assert study.trials[trials["a"].number].state == optuna.trial.TrialState.RUNNING, broken(
            "OptunaSearch._ot_study", "does not hold the trial it asked for"
        )


# --- touches in the tests and benchmarks -------------------------------------------------------


def test_latest_ray_address_finder_is_what_ray_init_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_search.py pretends another Ray runs on this machine: `ray.init()` without an
    address would join it, and the search's address="local" does not."""
    from ray._private import services

    touch = upstream.LATEST_RAY_ADDRESS_FINDER
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(touch, lambda *args: "127.0.0.1:9")
    assert services.canonicalize_bootstrap_address(None) is not None, broken(touch, "ray.init no longer asks it")
    assert services.canonicalize_bootstrap_address("local") is None, broken(touch, "address='local' asks it")


def test_ray_node_class_of_the_cluster_tests() -> None:
    node = importlib.import_module("ray._private.node")
    assert isinstance(getattr(node, "Node", None), type), broken("ray._private.node.Node", "is gone")


def test_ray_memory_summary_of_the_memory_benchmark() -> None:
    import inspect

    from ray._private import internal_api

    touch = "ray._private.internal_api.memory_summary"
    parameters = inspect.signature(internal_api.memory_summary).parameters
    assert list(parameters)[0] == "address" and "stats_only" in parameters, broken(touch, f"takes {list(parameters)}")


# --- the names Ray's pickles of a search hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "defined_in"),
    [
        ("search.runner", "ResumableOptunaSearch", "search.optuna_search"),
        ("search.runner", "SpaceSampler", "search.optuna_search"),
        ("search.runner", "EpochBudget", "search.tuner"),
        ("search.runner", "trial_name", "search.tuner"),
        ("search.space", "Distribution", "search.distributions"),
        ("search.space", "SearchSettings", "search.settings"),
        ("search.space", "SectionRule", "search.sections"),
        ("search.space", "SectionSpace", "search.sections"),
    ],
)
def test_names_pickled_by_searches_started_before_the_split_still_resolve(
    module: str, name: str, defined_in: str
) -> None:
    """Ray pickles the searcher, stopper and trial name creator (tuner.pkl) and the space
    (searcher-state-*.pkl) by module and name: such a search resumes only if they resolve."""
    assert getattr(importlib.import_module(module), name) is getattr(importlib.import_module(defined_in), name)
