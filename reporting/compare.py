"""`python report.py --compare A B`: two experiments on the same data, side by side.

Each experiment's per-clip test results come from its report (`report/predictions.csv`); one
without a complete report is reported first, as `python report.py --experiment` would (its default
seeds and folder, the plugin files named with --plugin). Experiments on different data (dataset
fingerprints differ) or different test clips are refused in one line before anything is trained.
Config differences list only the settings at least one of the two models uses (`unused_settings`).
Writes report.md, report.json and comparison.png into `--out`, or `compare-<A>-vs-<B>/` in A's
storage folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import UserError
from common.experiment import REPORT_DIR, read_metadata
from common.partials import atomic_write
from models.plugins import recorded_among
from reporting import clips, figures
from reporting.baselines import REPORT_JSON, report_complete
from reporting.build import REPORT_FILE, ReportRequest, make_report
from reporting.locate import find_experiment
from reporting.markdown import md_table, paired_lines
from reporting.results import class_word, per_genre
from reporting.stats import BOOTSTRAP_METHOD, Comparison, accuracy_interval, compare

FIGURE = "comparison.png"


@dataclass(frozen=True)
class Reported:
    """One side of the comparison: an experiment and its report's numbers and per-clip results."""

    folder: Path
    numbers: dict[str, Any]  # its report.json
    test: clips.ClipResults

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class CompareRequest:
    experiments: tuple[str, str]  # paths, or names in `storage`
    seeds: int = 3  # for an experiment reported on demand
    out: str | None = None
    storage: str | None = None
    plugins: tuple[str, ...] = ()  # plugin files the user names (--plugin), for an experiment reported on demand


def make_comparison(request: CompareRequest) -> Path:
    """Write the side-by-side report; returns the path of its report.md. Bad input raises `UserError`."""
    folders = [find_experiment(spec, request.storage) for spec in request.experiments]
    if folders[0] == folders[1]:
        raise UserError(f"--compare needs two different experiments, got {folders[0]} twice")
    _require_same_data(folders)
    a, b = (_reported(folder, request.seeds, request.plugins) for folder in folders)
    if a.test.clip_ids != b.test.clip_ids or a.test.classes != b.test.classes:
        raise UserError(f"{a.folder} and {b.folder} were tested on different test clips or classes: not comparable")
    result = compare(a.test.correct, b.test.correct, a.test.ensemble_correct, b.test.ensemble_correct, f"`{b.name}`")
    default = a.folder.parent / f"compare-{a.name}-vs-{b.name}"
    out_dir = Path(request.out).expanduser().resolve() if request.out else default
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = _class_differences(a, b)
    intervals = [_intervals(side) for side in (a, b)]
    figures.comparison_png(
        [a.name, b.name], [[(i.estimate, i.low, i.high) for i in pair] for pair in intervals], classes, out_dir / FIGURE
    )
    text = _render(a, b, result, classes, intervals)
    with atomic_write(out_dir / REPORT_FILE) as file:
        file.write(text)
    numbers = _numbers(a, b, result, classes, intervals)
    with atomic_write(out_dir / REPORT_JSON) as file:
        file.write(json.dumps(numbers, indent=2))
    print(text)
    print(f"comparison written to {out_dir / REPORT_FILE}")
    return out_dir / REPORT_FILE


def _require_same_data(folders: list[Path]) -> None:
    fingerprints = [read_metadata(folder)["dataset"].get("fingerprint") for folder in folders]
    if fingerprints[0] != fingerprints[1]:
        raise UserError(
            f"{folders[0]} and {folders[1]} ran on different data (dataset fingerprints {fingerprints[0]} and"
            f" {fingerprints[1]}): not comparable"
        )


def _reported(folder: Path, seeds: int, plugins: tuple[str, ...]) -> Reported:
    """The experiment's report, made now (retraining it) when it has no complete one."""
    report_dir = folder / REPORT_DIR
    if not report_complete(report_dir):
        print(f"{folder} has no complete report with per-clip results: reporting it first (--seeds {seeds})")
        named = recorded_among(plugins, read_metadata(folder).get("plugins") or [])
        make_report(ReportRequest(experiment=str(folder), seeds=seeds, plugins=named))
    numbers = json.loads((report_dir / REPORT_JSON).read_text())
    return Reported(folder, numbers, clips.read(report_dir / clips.PREDICTIONS_CSV, "test"))


def _intervals(side: Reported) -> tuple[Any, Any]:
    return accuracy_interval(side.test.correct), accuracy_interval(side.test.ensemble_correct)


def _class_differences(a: Reported, b: Reported) -> pd.DataFrame:
    """Per class: each side's recall (seeds pooled) and A minus B."""
    ours, theirs = per_genre(*a.test.pooled(), a.test.classes), per_genre(*b.test.pooled(), b.test.classes)
    word = class_word(a.test.classes)
    return pd.DataFrame(
        {
            word: ours[word],
            f"recall {a.name}": ours["accuracy (recall)"],
            f"recall {b.name}": theirs["accuracy (recall)"],
            "difference": ours["accuracy (recall)"] - theirs["accuracy (recall)"],
        }
    )


# Settings a config holds but does not use, as (dotted key, the setting that leaves it unused): each
# key is dropped from the config differences when neither model uses it (training/config.py's rules).
UNUSED_WHEN = {
    "augment.time_mask_frames": ("augment.time_masks", lambda masks: masks == 0),
    "augment.freq_mask_bins": ("augment.freq_masks", lambda masks: masks == 0),
    "augment.time_masks": ("augment.time_mask_frames", lambda frames: frames == 0),  # masks of no width
    "augment.freq_masks": ("augment.freq_mask_bins", lambda bins: bins == 0),
    "optimizer.momentum": ("optimizer.name", lambda name: name not in ("sgd", "rmsprop")),
    "optimizer.nesterov": ("optimizer.name", lambda name: name != "sgd"),
    "schedule.factor": ("schedule.name", lambda name: name not in ("plateau", "step")),
    "schedule.patience": ("schedule.name", lambda name: name != "plateau"),
    "schedule.step_size": ("schedule.name", lambda name: name != "step"),
    "training.min_lr": ("schedule.name", lambda name: name == "none"),
}
AUDIO_AUGMENT = "features.audio_augment."  # every key but `copies` is unused without copies


def unused_settings(flat: dict[str, Any]) -> set[str]:
    """The dotted keys of a flattened config that have no effect on the model it trains."""
    unused = {key for key, (switch, off) in UNUSED_WHEN.items() if switch in flat and off(flat[switch])}
    if flat.get(f"{AUDIO_AUGMENT}copies", 0) == 0:
        unused |= {key for key in flat if key.startswith(AUDIO_AUGMENT) and key != f"{AUDIO_AUGMENT}copies"}
    return unused


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> pd.DataFrame:
    """The dotted keys whose values differ between two nested configs (missing on one side: n/a),
    except settings neither model uses (`unused_settings`: mask sizes with no masks, ...)."""
    flat_a, flat_b = (pd.json_normalize(config, sep=".").to_dict(orient="records")[0] for config in (a, b))
    keys = sorted((set(flat_a) | set(flat_b)) - (unused_settings(flat_a) & unused_settings(flat_b)))
    rows = [(key, flat_a.get(key, "n/a"), flat_b.get(key, "n/a")) for key in keys]
    differing = [row for row in rows if str(row[1]) != str(row[2])]
    return pd.DataFrame(differing, columns=["key", "A", "B"], dtype=object)  # object: an int stays an int


def _render(a: Reported, b: Reported, result: Comparison, classes: pd.DataFrame, intervals: list) -> str:
    rows = [
        f"| {letter}: `{side.name}` | `{side.numbers['best_trial']}` | {len(side.test.probs)} | {seed.text()} |"
        f" {ensemble.text()} |"
        for letter, side, (seed, ensemble) in zip("AB", (a, b), intervals)
    ]
    differences = config_differences(a.numbers["config"], b.numbers["config"])
    lines = [
        f"# Comparison: `{a.name}` (A) against `{b.name}` (B)",
        "",
        f"A: `{a.folder}`; B: `{b.folder}`; same dataset fingerprint, same {result.clips} test clips.",
        "",
        "## Test accuracy",
        "",
        "| experiment | best trial | seeds | seed-averaged [95% interval] | ensemble [95% interval] |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Intervals: {BOOTSTRAP_METHOD}; the ensemble averages the seeds' probabilities per clip.",
        "",
        *paired_lines(result, f"`{a.name}`", f"`{b.name}`"),
        "",
        "## Per class (test recall, seeds pooled)",
        "",
        *md_table(classes),
        "",
        f"![Accuracies with intervals and per-class differences]({FIGURE})",
        "",
        f"## Config differences (keys that differ: {len(differences)})",
        "",
        *(md_table(differences) if len(differences) else ["The two configs are identical."]),
    ]
    return "\n".join(lines) + "\n"


def _numbers(a: Reported, b: Reported, result: Comparison, classes: pd.DataFrame, intervals: list) -> dict[str, Any]:
    return {
        "a": {"experiment": a.name, "folder": str(a.folder), "test": intervals[0][0].to_dict()},
        "b": {"experiment": b.name, "folder": str(b.folder), "test": intervals[1][0].to_dict()},
        "test_ensemble": {"a": intervals[0][1].to_dict(), "b": intervals[1][1].to_dict()},
        "interval_method": BOOTSTRAP_METHOD,
        "comparison": result.to_dict(),
        "per_class": classes.to_dict(orient="list"),
        "config_differences": config_differences(a.numbers["config"], b.numbers["config"]).to_dict(orient="records"),
    }
