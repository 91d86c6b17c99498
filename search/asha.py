"""Why each trial of a search ended: ASHA (Ray Tune's AsyncHyperBandScheduler) recording the rung,
value and cutoff of every cut it makes, and one record per ended trial (StopLog) for the study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from common import upstream
from common.trials import EPOCH, INTERRUPTED

# Why a trial ended (the leaderboard's `stop_reason`, the study's user attr of the same name).
RUNG_CUT = "rung_cut"  # below its rung's cutoff: ASHA stopped it
EPOCH_BUDGET = "epoch_budget"  # the search's epoch budget was spent (search.epoch_budget)
SCHEDULE_ENDED = "schedule_ended"  # its own schedule ended it before max_epochs (training.min_lr)
MAX_EPOCHS = "max_epochs"  # it ran every epoch
ERRORED = "errored"


@dataclass(frozen=True)
class StopRecord:
    reason: str
    rung: int | None = None  # the rung's epoch, for a cut
    value: float | None = None  # the trial's validation clip accuracy at the rung
    cutoff: float | None = None  # the rung's cutoff: the best 1/reduction_factor of the trials there

    def as_row(self) -> dict[str, Any]:
        """The leaderboard's columns (common.trials.STOP_COLUMNS)."""
        return {"stop_reason": self.reason, "rung": self.rung, "cutoff": self.cutoff}

    def text(self) -> str:
        """e.g. `cut at rung 4: 0.312 below the cutoff 0.406`."""
        if self.reason == RUNG_CUT:
            return f"cut at rung {self.rung}: {self.value:.3f} below the cutoff {self.cutoff:.3f}"
        return self.reason.replace("_", " ")


class StopLog:
    """Why each trial ended, by Ray trial id. Shared by the scheduler (its cuts), the epoch budget
    (spent or not), the searcher (which files every trial as it completes, before Ray's callbacks
    hear of it) and the progress callback (which prints and saves it): all one run's objects."""

    def __init__(self, max_epochs: int):
        self.max_epochs = max_epochs
        self.cuts: dict[str, StopRecord] = {}
        self.ended: dict[str, StopRecord] = {}
        self.budget_spent = False

    def file(self, trial_id: str, result: dict | None, error: bool, interrupted: bool) -> StopRecord:
        """Why the trial `trial_id`, whose last result was `result`, ended; kept in `ended`."""
        self.ended[trial_id] = stop_record(self, trial_id, result or {}, error, interrupted)
        return self.ended[trial_id]


def stop_record(log: StopLog, trial_id: str, result: dict, error: bool, interrupted: bool) -> StopRecord:
    if error:
        return StopRecord(ERRORED)
    if trial_id in log.cuts:
        return log.cuts[trial_id]
    if result.get(EPOCH, 0) >= log.max_epochs:
        return StopRecord(MAX_EPOCHS)
    if log.budget_spent:
        return StopRecord(EPOCH_BUDGET)
    if interrupted or not result.get("done"):
        return StopRecord(INTERRUPTED)
    return StopRecord(SCHEDULE_ENDED)


class RecordingASHA(ASHAScheduler):
    """ASHA that notes, for every trial it cuts, the rung, the trial's value there and the cutoff."""

    def __init__(self, log: StopLog, *, metric: str, max_t: int, **kwargs: Any):
        super().__init__(time_attr=EPOCH, metric=metric, mode="max", max_t=max_t, **kwargs)
        self.log = log
        self.metric_name = metric

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        epoch, value = result.get(EPOCH), result.get(self.metric_name)
        rung = None if epoch is None or value is None else upstream.asha_next_rung(self, trial.trial_id, epoch)
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and rung is not None and epoch < self.log.max_epochs:
            milestone, cutoff = rung
            self.log.cuts[trial.trial_id] = StopRecord(RUNG_CUT, int(milestone), float(value), float(cutoff))
        return action
