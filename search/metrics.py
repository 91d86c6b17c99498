"""The search's own metrics, exported through `ray.util.metrics`: Ray serves them, prefixed `ray_`,
on every node's Prometheus endpoint (the node's metrics export port), beside Ray's own, so that
Prometheus and Grafana (and the dashboard's Metrics view) show them.

Per trial, set by the trial's worker every epoch and tagged experiment and trial: epoch,
validation clip accuracy, train and validation loss, epoch seconds, training examples per second.
Ray drops a gauge series that is not recorded again within about two export intervals (20 s by
default), far shorter than an epoch on real data, so the worker re-records its running trial's
last values every second until the trial ends.
Per search, set by the driver: trials by status (tag `status`) and the best validation clip
accuracy so far, tagged experiment. Ray has no call to export now: before the driver exits it waits
until Ray's next export has sent the final values (flush_search), so the last scrape shows them;
it waits after the leaderboard is printed, outside the search's recorded time."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from functools import cache

from ray.util.metrics import Gauge

PREFIX = "genre_search_"
TRIAL_TAGS = ("experiment", "trial")
# Each trial gauge and the key of the epoch's metrics (training.EpochMetrics) it takes.
TRIAL_GAUGES = {
    "trial_epoch": ("epoch", "epochs completed"),
    "trial_valid_clip_acc": ("valid_clip_acc", "validation clip accuracy of the last epoch"),
    "trial_train_loss": ("train_loss", "mean training loss of the last epoch"),
    "trial_valid_loss": ("valid_loss", "validation loss of the last epoch"),
    "trial_epoch_seconds": ("epoch_seconds", "wall time of the last epoch (training and validation)"),
    "trial_examples_per_second": ("examples_per_second", "training crops of the last epoch per epoch second"),
}
STATUSES = ("pending", "running", "finished", "stopped_early", "errored")
REFRESH_SECONDS = 1.0
# Ray's interval between exports of a process's metrics to the node's endpoint (Ray's own default: 10 s).
EXPORT_INTERVAL_VARIABLE = "RAY_metrics_report_interval_ms"
EXPORT_MARGIN_SECONDS = 1.0
# The search's last values (experiment, counts, best) and when they last changed (time.monotonic()).
_search_last: tuple[tuple, float] | None = None
# The tags and the last value per gauge name of the trial this process runs now; None between trials.
_current: tuple[dict[str, str], dict[str, float]] | None = None


@cache
def _trial_gauges() -> dict[str, Gauge]:
    """One Gauge per name and process: a reused worker sets them for each trial it runs in turn."""
    return {name: Gauge(PREFIX + name, about, tag_keys=TRIAL_TAGS) for name, (_, about) in TRIAL_GAUGES.items()}


@cache
def _search_gauges() -> tuple[Gauge, Gauge]:
    trials = Gauge(PREFIX + "trials", "trials of the search by status", tag_keys=("experiment", "status"))
    best = Gauge(PREFIX + "best_valid_clip_acc", "best validation clip accuracy so far", tag_keys=("experiment",))
    return trials, best


def record_epoch(experiment: str, trial: str, values: Mapping[str, float | None]) -> None:
    """Set the trial's gauges from one epoch's metrics (a value that is None is left as it was),
    and keep them on the endpoint until `trial_ended()`."""
    global _current
    tags = {"experiment": experiment, "trial": trial}
    last = _current[1] if _current is not None and _current[0] == tags else {}
    epoch = {name: float(values[key]) for name, (key, _) in TRIAL_GAUGES.items() if values.get(key) is not None}
    _current = (tags, {**last, **epoch})
    _refresh()
    _start_refreshing()


def trial_ended() -> None:
    """Stop re-recording the last trial's gauges: Ray drops them from the endpoint soon after."""
    global _current
    _current = None


def _refresh() -> None:
    current = _current  # one read: the training thread may replace it meanwhile
    if current is not None:
        tags, values = current
        gauges = _trial_gauges()
        for name, value in values.items():
            gauges[name].set(value, tags=tags)


@cache
def _start_refreshing() -> None:
    """One daemon thread per process re-records the running trial's gauges (the module docstring says why)."""

    def loop() -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            _refresh()

    threading.Thread(target=loop, name="genre-search-metrics", daemon=True).start()


def record_search(experiment: str, counts: Mapping[str, int], best: float | None) -> None:
    """Set the search's gauges: trials per status (every status, zeros included) and the best so far."""
    global _search_last
    values = (experiment, tuple(counts.get(status, 0) for status in STATUSES), best)
    if _search_last is None or _search_last[0] != values:
        _search_last = (values, time.monotonic())
    trials, best_gauge = _search_gauges()
    for status in STATUSES:
        trials.set(counts.get(status, 0), tags={"experiment": experiment, "status": status})
    if best is not None:
        best_gauge.set(best, tags={"experiment": experiment})


def export_interval() -> float:
    """Seconds between Ray's exports of this process's metrics."""
    return int(os.environ.get(EXPORT_INTERVAL_VARIABLE, "10000")) / 1000


def seconds_to_final_export() -> float:
    """How long until Ray has exported the search's last values: one export interval (and a margin)
    after they last changed; 0 when that has passed already (or nothing was recorded)."""
    if _search_last is None:
        return 0.0
    return max(0.0, _search_last[1] + export_interval() + EXPORT_MARGIN_SECONDS - time.monotonic())


def flush_search() -> None:
    """Wait until Ray has exported the search's last values (seconds_to_final_export)."""
    wait = seconds_to_final_export()
    if wait > 0:
        time.sleep(wait)
