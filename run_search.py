"""Search for the best CNN for music genre classification: `python run_search.py --space cnn2d.yaml`.

Builds the feature stores the space can select, then runs Ray Tune (Optuna TPE + ASHA) over the
space file's architectures, optimizers and schedules. Results go to `<storage>/<name>/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys

from common.errors import exit_on_user_error
from features.layouts import DataOptions
from search.lifecycle import handle_stop_signals, interrupted_line, stop_signal
from search.runner import SearchRequest, build_space_stores, run_search

# The shell's exit status for a command stopped by a signal: 128 + its number (Ctrl-C 130, SIGTERM 143).
STOPPED_EXIT_CODE = 128 + signal.SIGINT
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


def parse_args(argv: list[str] | None = None) -> SearchRequest:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", help="space file: a path, or a name in spaces/ (e.g. cnn2d.yaml)")
    parser.add_argument(
        "--data", help="dataset folder or manifest .csv (default: $GTZAN_DIR, ~/gtzan, else the synthetic set)"
    )
    parser.add_argument("--num-samples", type=int, help="trials to run (overrides search.num_samples)")
    parser.add_argument("--max-epochs", type=int, help="epoch limit per trial (overrides search.max_epochs)")
    parser.add_argument(
        "--epoch-budget", type=int, help="end the search after this many epochs over all trials (search.epoch_budget)"
    )
    parser.add_argument("--name", help="experiment name (default: the space's name and a timestamp)")
    parser.add_argument("--storage", help="folder or URI for experiments (default: runs/ in the project)")
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search --name")
    parser.add_argument("--cpus-per-trial", type=float, help="overrides search.cpus_per_trial")
    parser.add_argument("--gpus-per-trial", type=float, help="overrides search.gpus_per_trial (CUDA only)")
    parser.add_argument(
        "--dashboard", action="store_true", help="serve optuna-dashboard on the study (127.0.0.1) while it runs"
    )
    parser.add_argument(
        "--build-stores-only",
        action="store_true",
        help="build (or reuse) the feature stores of --space for --data, print their paths and exit",
    )
    add_data_options(parser)
    args = vars(parser.parse_args(argv))
    data_options = DataOptions(**{field.name: args.pop(field.name) for field in dataclasses.fields(DataOptions)})
    return SearchRequest(**args, data_options=data_options)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """How to split --data that has no split of its own (recorded in the experiment)."""
    group = parser.add_argument_group("data without a split of its own")
    group.add_argument("--split", help="class folders: train,valid,test fractions (default 0.6,0.2,0.2)")
    group.add_argument("--split-seed", type=int, help="class folders: the split's seed (default 0)")
    group.add_argument("--group", help="class folders: regex over file names; a match's files stay in one split")
    group.add_argument("--test-fold", type=int, help="manifest with folds: the test fold (default: the last)")
    group.add_argument("--valid-fold", type=int, help="manifest with folds: the valid fold (default: the one before)")
    group.add_argument("--audio-dir", help="manifest: the folder its paths are relative to (default: its own)")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    handle_stop_signals()  # SIGTERM ends the search as Ctrl-C does (search.lifecycle)
    request = parse_args(argv)
    if request.build_stores_only:
        for path in build_space_stores(request).values():
            print(path)
        return
    try:
        outcome = run_search(request)
    except KeyboardInterrupt:
        number = stop_signal() or signal.SIGINT
        print(interrupted_line(number, None), file=sys.stderr)
        sys.exit(128 + number)
    if outcome.stopped:
        number = outcome.stop_signal or signal.SIGINT
        print(interrupted_line(number, outcome.resume_command))
        sys.exit(128 + number)
    print(f"experiment: {outcome.local_dir}\nnext: python report.py --experiment {outcome.local_dir}")


if __name__ == "__main__":
    main()
