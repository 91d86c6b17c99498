"""Report on a finished search: `python report.py [--experiment PATH_OR_NAME] [--seeds N]`.

Picks the experiment's best trial (best validation clip accuracy at any epoch, ties by validation
loss), retrains its saved config from scratch with N seeds using the search's own `fit()`, and
evaluates each on validation and, only here, on the test split. Writes `report.md` with its PNG
figures, `report.json` and one model file per seed into `<experiment>/report/` (or `--out`).

Compared with: the homework baseline's published 63.44% test accuracy when the data is GTZAN's 8
homework genres, and `baseline.yaml`'s result when an experiment of it on the same dataset (same
fingerprint) is in the same storage folder (the latest one; see reporting/baselines.py).

The experiment folder is read from its JSON and CSV files only, never unpickled; an experiment in
which no trial finished an epoch gets its leaderboard and one line, with exit code 2.
"""

from __future__ import annotations

import argparse
import logging

from common.errors import exit_on_user_error
from reporting.build import ReportRequest, make_report


def parse_args(argv: list[str] | None = None) -> ReportRequest:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", help="experiment folder, or its name in --storage (default: the latest)")
    parser.add_argument("--seeds", type=int, default=3, help="retraining runs, training.seed = 0..N-1 (default 3)")
    parser.add_argument(
        "--merge-train-valid",
        action="store_true",
        help="also train on train+valid for each seed's best epoch count, and test that model",
    )
    parser.add_argument("--out", help="output folder (default: report/ inside the experiment)")
    parser.add_argument("--storage", help="folder holding experiments (default: runs/ in the project)")
    args = parser.parse_args(argv)
    return ReportRequest(**vars(args))


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    make_report(parse_args(argv))


if __name__ == "__main__":
    main()
