"""TensorBoard's event file of every trial: each epoch's metrics as curves, and an HParams session
from the trial's start with its searched parameters only and its best accuracy so far."""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune.logger import TBXLoggerCallback
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from torch.utils.tensorboard.summary import scalar
from torch.utils.tensorboard.writer import FileWriter

from common import upstream
from common.trials import METRIC
from search.distributions import Distribution

CURVES = "ray/tune/"  # each epoch's metrics, under the tags Ray Tune's own logger gives them
BEST = f"best_{METRIC}"  # the HParams tab's metrics, updated every epoch
EPOCHS = "epochs"
NOT_CURVES = {"config", "pid", "timestamp", "time_total_s", "training_iteration", "done"}  # as Ray's logger


class SearchTensorBoard(TBXLoggerCallback):
    """Ray Tune's TensorBoard logger, replaced (Ray adds its own unless given one of its class): the
    HParams tab lists each searched parameter once, by its Optuna name, and no constants; a trial
    appears when it starts, with its best accuracy so far and its epochs, and is marked when it ends."""

    def __init__(self, parameters: dict[str, Distribution]):
        super().__init__()
        self.parameters = parameters  # the space's (search.space.Space.parameters)
        self.writers: dict[Any, FileWriter] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "writers": {}, "_trial_writer": {}}  # Ray pickles its callbacks (tuner.pkl)

    def log_trial_start(self, trial: Any) -> None:
        self._close(trial)
        writer = self.writers[trial] = FileWriter(str(upstream.ray_trial_folder(trial)), flush_secs=30)
        config = upstream.ray_trial_config(trial)
        values = {name: _hparam_value(config[name]) for name in self.parameters if name in config}
        writer.add_summary(self._experiment())
        writer.add_summary(hp.hparams_pb(values, trial_id=str(trial), start_time_secs=time.time()))
        writer.flush()

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        if trial not in self.writers:
            self.log_trial_start(trial)
        writer, step = self.writers[trial], result.get("training_iteration", iteration)
        for key, value in result.items():
            if key not in NOT_CURVES and _is_number(value):
                writer.add_summary(scalar(CURVES + key, value), step)
        best = max(v for v in (result.get(METRIC), upstream.ray_trial_best(trial, METRIC)) if v is not None)
        writer.add_summary(scalar(BEST, best), step)
        writer.add_summary(scalar(EPOCHS, step), step)
        writer.flush()

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial in self.writers:
            self.writers[trial].add_summary(_session_end(api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS))
            self._close(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in list(self.writers):  # trials still running when the search stopped: left "running"
            self._close(trial)

    def _close(self, trial: Any) -> None:
        writer = self.writers.pop(trial, None)
        if writer is not None:
            writer.close()

    def _experiment(self) -> Summary:
        """The HParams tab's columns: every searched parameter, with its domain, and the metrics."""
        columns = [hp.HParam(name, _domain(distribution)) for name, distribution in self.parameters.items()]
        metrics = [hp.Metric(BEST, display_name=f"best {METRIC}"), hp.Metric(EPOCHS)]
        return hp.hparams_config_pb(columns, metrics)


def _domain(distribution: Distribution) -> hp.Domain | None:
    if distribution.kind == "int":
        return hp.IntInterval(*distribution.args[:2])
    if distribution.kind != "choice":
        return hp.RealInterval(*map(float, distribution.args[:2]))
    try:
        return hp.Discrete([_hparam_value(distribution.fixed(value, "")) for value in distribution.args])
    except ValueError:  # choices of different types (1 and "a"): a column without a domain
        return None


def _hparam_value(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _session_end(status: int) -> Summary:
    """TensorBoard's session-end summary (its own helper needs TensorFlow)."""
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    content = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    tag = metadata.SESSION_END_INFO_TAG
    return Summary(
        value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content), tensor=metadata.NULL_TENSOR)]
    )
