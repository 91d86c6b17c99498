"""Which searched hyperparameters mattered: Optuna's fANOVA importance evaluator on the search's
own study (`study.sqlite`), with the number of trials it rests on, or a sentence saying why not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from common.experiment import STUDY_FILE

# fANOVA fits a random forest to the completed trials' values (ASHA-stopped ones at the epoch they
# stopped): on a handful of trials its ranking is mostly noise, so below this many it is withheld.
MIN_TRIALS = 10


@dataclass(frozen=True)
class Importance:
    note: str  # how the numbers were computed, or why there are none
    values: dict[str, float] = field(default_factory=dict)  # parameter -> importance, highest first
    trials: int = 0  # the completed trials it rests on


def param_importances(folder: Path, study_name: str) -> Importance:
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        return Importance(f"no {STUDY_FILE} in {folder}: importance not computed")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{path}")
    except KeyError:
        return Importance(f"{path} holds no study named {study_name!r}: importance not computed")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS:
        return Importance(
            f"withheld: it would rest on {len(complete)} completed trial(s), and below {MIN_TRIALS} fANOVA's ranking"
            " is mostly noise",
            trials=len(complete),
        )
    return _evaluate(study, complete)


def _evaluate(study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> Importance:
    # Conditional parameters (one optimizer's momentum, one architecture's depth) are missing from
    # the trials that did not pick their option; fANOVA needs values for every trial it fits.
    everywhere = set.intersection(*(set(trial.params) for trial in complete))
    varied = sorted(p for p in everywhere if len({repr(trial.params[p]) for trial in complete}) > 1)
    left_out = sorted({p for trial in complete for p in trial.params} - set(varied))
    about = (
        f"Optuna fANOVA (seed 0), resting on {len(complete)} completed trials (shown from {MIN_TRIALS}): a rough"
        " ranking, not a measurement; the value is the one each trial reported to Optuna: its last epoch's"
        " valid_clip_acc (ASHA-stopped trials at the epoch they stopped)"
    )
    if left_out:
        about += f"; left out (conditional, or one value only): {', '.join(left_out)}"
    count = len(complete)
    if not varied:
        return Importance("no hyperparameter took more than one value in every completed trial: nothing to rank")
    if len({trial.value for trial in complete}) == 1:
        return Importance(
            f"every completed trial reported the same value ({complete[0].value:.4g}): nothing to explain"
        )
    if len(varied) == 1:
        return Importance(f"{about}; a single parameter explains everything there is", {varied[0]: 1.0}, count)
    try:
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=varied
        )
    except (ValueError, RuntimeError) as err:  # e.g. every trial with the same value: no variance to split
        return Importance(f"importance not computed ({type(err).__name__}: {err})")
    return Importance(about, {name: float(value) for name, value in values.items()}, count)
