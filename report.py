"""Report on a finished search: `python report.py [--experiment PATH_OR_NAME] [--seeds N]`,
or compare two: `python report.py --compare A B`.

Picks the experiment's best trial (best validation clip accuracy at any epoch, ties by validation
loss), retrains its saved config from scratch with N seeds using the search's own `fit()`, and
evaluates each on validation and, only here, on the test split. Writes `report.md` with its PNG
figures, `report.json` and one model file per seed into `<experiment>/report/` (or `--out`).

Compared with: the homework baseline's published 63.44% test accuracy when the test split is the
homework's own (the fingerprint of its 227 clip names), and `baseline.yaml`'s result when an
experiment of it on the same dataset (same fingerprint) is in the same storage folder (the latest
one; see reporting/baselines.py). That experiment is reported first unless its report was made from
the same data and code; `--no-baseline` leaves it out.

Every accuracy has a 95% interval (bootstrap over clips), and a comparison pairs the two models
on the same test clips (McNemar's exact test) with a one-sentence verdict. `--compare A B` writes
a side-by-side report of two experiments on the same data (reporting/compare.py).

The experiment folder is read from its JSON and CSV files only, never unpickled, and its records
run no code: a plugin architecture is retrained only with the file the user names (`--plugin FILE`,
SHA-256 as recorded). An experiment in which no trial finished an epoch gets its leaderboard and
one line, with exit code 2. Outputs appear together when complete (report.json last).
"""

from __future__ import annotations

import argparse
import logging

from common.errors import exit_on_user_error
from reporting.build import ReportRequest, make_report
from reporting.compare import CompareRequest, make_comparison


def parse_args(argv: list[str] | None = None) -> ReportRequest | CompareRequest:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", help="experiment folder, or its name in --storage (default: the latest)")
    parser.add_argument("--seeds", type=int, default=3, help="retraining runs, training.seed = 0..N-1 (default 3)")
    parser.add_argument(
        "--merge-train-valid",
        action="store_true",
        help="also train on train+valid for each seed's best epoch count, and test that model",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two experiments on the same data (each reported first if it has no report)",
    )
    parser.add_argument(
        "--out", help="output folder (default: report/ inside the experiment; compare-A-vs-B/ beside A for --compare)"
    )
    parser.add_argument("--storage", help="folder holding experiments (default: runs/ in the project)")
    parser.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=[],
        metavar="FILE",
        help="a plugin file the experiment recorded (its SHA-256 must match): records never run code by themselves",
    )
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="leave out the baseline.yaml experiment beside this one (else reported first, or its report reused)",
    )
    args = vars(parser.parse_args(argv))
    compared = args.pop("compare")
    args["plugins"] = tuple(args["plugins"])
    if compared is None:
        return ReportRequest(**args)
    if args["experiment"] or args["merge_train_valid"] or not args["baseline"]:
        parser.error(
            "--compare takes its two experiments itself: without --experiment, --merge-train-valid or --no-baseline"
        )
    return CompareRequest(tuple(compared), args["seeds"], args["out"], args["storage"], args["plugins"])


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    request = parse_args(argv)
    if isinstance(request, CompareRequest):
        make_comparison(request)
    else:
        make_report(request)


if __name__ == "__main__":
    main()
