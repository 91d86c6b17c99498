"""A space file's `search` section: how many trials, what to optimise, TPE's options, the trials
run first, ASHA, the epoch budget and each trial's resources. Command-line flags override these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from common.typed import require


@dataclass(frozen=True)
class SearchSettings:
    """The `search` section: how many trials, what to optimise, ASHA, per-trial resources.
    Command-line flags override these."""

    num_samples: int = 16  # trials to run
    max_epochs: int = 20  # every trial's epoch limit, and ASHA's max_t
    grace_period: int = 2  # ASHA: epochs a trial runs before it can be stopped
    reduction_factor: int = 3  # ASHA: about 1/reduction_factor of trials go on at each rung
    seed: int = 0  # seeds Optuna's TPE sampler
    metric: Literal["valid_clip_acc"] = "valid_clip_acc"  # what ASHA and TPE maximise
    scheduler: Literal["asha", "fifo"] = "asha"  # fifo runs every trial to max_epochs (for comparison)
    searcher: Literal["tpe", "random"] = "tpe"  # random: Optuna's RandomSampler on the same space (for comparison)
    # TPE's options for this kind of space (Optuna's TPESampler): multivariate models the chosen
    # values jointly, one model per set of parameters that occur together (group=True: the space
    # is conditional); constant_liar counts running trials as poor results, so that two workers
    # do not propose the same region at once. Off: Optuna's defaults.
    tpe_multivariate: bool = False
    tpe_constant_liar: bool = False
    # Finished trials TPE needs before it models anything (Optuna's n_startup_trials; before
    # them, random draws). Queued first trials count among them.
    tpe_startup_trials: int = 10
    # Trials run first, before TPE draws: values you trust (the homework's recipe, your notebook's
    # best), each a mapping of searched parameters (`optimizer.lr: 0.003`); the ones a trial
    # leaves out are drawn as usual. Ray Tune's points_to_evaluate, Optuna's enqueue_trial.
    first_trials: tuple[Any, ...] = ()
    epoch_budget: int | None = None  # stop the whole search once its trials have run this many epochs in all
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.25  # only where CUDA is present: 0.25 lets four small CNNs share a GPU
    max_failures: int = 1  # retries of a failed trial, from its last checkpoint
    # A new trial runs in a finished trial's worker process (about 3.5 s less per trial on 2 cores,
    # tests/bench/bench_search.py: no new process importing torch and Ray Tune). Ray's dashboard
    # names a worker after its first trial (an actor's repr is read once); each trial's start is
    # a line of its worker's log. false: a worker of its own for every trial.
    reuse_workers: bool = True
    keep_checkpoints: int = 4  # per trial, the newest (only resume reads them; the report retrains). Fewer
    # make Ray force an experiment snapshot every few short epochs (and warn about it)

    def __post_init__(self) -> None:
        for key in ("num_samples", "max_epochs", "grace_period", "keep_checkpoints", "tpe_startup_trials"):
            require(getattr(self, key) >= 1, f"search.{key}", getattr(self, key), "must be at least 1")
        above = f"is above search.max_epochs {self.max_epochs}"
        require(self.grace_period <= self.max_epochs, "search.grace_period", self.grace_period, above)
        require(self.reduction_factor >= 2, "search.reduction_factor", self.reduction_factor, "must be at least 2")
        require(self.cpus_per_trial > 0, "search.cpus_per_trial", self.cpus_per_trial, "must be above 0")
        require(0 <= self.gpus_per_trial <= 1, "search.gpus_per_trial", self.gpus_per_trial, "must be in [0, 1]")
        require(self.max_failures >= 0, "search.max_failures", self.max_failures, "must be zero or positive")
        budget = self.epoch_budget
        require(budget is None or budget >= 1, "search.epoch_budget", budget, "must be at least 1 (or left out)")
