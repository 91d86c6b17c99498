"""Search for the best CNN for music genre classification: `python run_search.py --space cnn2d.yaml`.

Builds the feature stores the space can select, then runs Ray Tune (Optuna TPE + ASHA) over the
space file's architectures, optimizers and schedules. Results go to `<storage>/<name>/`.
"""

from __future__ import annotations

import argparse
import logging

from common.errors import exit_on_user_error
from search.runner import SearchRequest, run_search


def parse_args(argv: list[str] | None = None) -> SearchRequest:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", help="space file: a path, or a name in spaces/ (e.g. cnn2d.yaml)")
    parser.add_argument("--data", help="dataset root (default: $GTZAN_DIR, ~/gtzan, else the synthetic set)")
    parser.add_argument("--num-samples", type=int, help="trials to run (overrides search.num_samples)")
    parser.add_argument("--max-epochs", type=int, help="epoch limit per trial (overrides search.max_epochs)")
    parser.add_argument("--name", help="experiment name (default: the space's name and a timestamp)")
    parser.add_argument("--storage", help="folder or URI for experiments (default: runs/ in the project)")
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search --name")
    parser.add_argument("--cpus-per-trial", type=float, help="overrides search.cpus_per_trial")
    parser.add_argument("--gpus-per-trial", type=float, help="overrides search.gpus_per_trial (CUDA only)")
    args = parser.parse_args(argv)
    return SearchRequest(**{key.replace("-", "_"): value for key, value in vars(args).items()})


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    experiment = run_search(parse_args(argv))
    print(f"experiment: {experiment}\nnext: python report.py --experiment {experiment}")


if __name__ == "__main__":
    main()
