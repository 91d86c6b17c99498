"""Classes of audio files from a model saved by report.py: `python predict.py MODEL song.wav [--top K]`.

Each file gets the features the model was trained on, cut into the same segments as validation and
test, and the segments' class probabilities averaged. A file that cannot be read as audio is
reported on stderr and the others are still classified (exit code 1 then). A model of a plugin
architecture runs no code it merely records: pass the plugin file (`--plugin FILE`), which is
imported only when its SHA-256 is the one the model records, else refused in one line naming both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from common.errors import UserError, exit_on_user_error
from features.compute import DecodeError, features_of_file
from training.saved_model import SavedModel, load_model


def top_genres(saved: SavedModel, probs: np.ndarray, top: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:top]
    return [(saved.classes[i], float(probs[i])) for i in order]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a model file written by report.py (report/model-seed0.pt)")
    parser.add_argument("audio", nargs="+", help="audio files (wav, au, flac, mp3, ...)")
    parser.add_argument("--top", type=int, default=3, help="classes to print per file (default 3)")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="the plugin file of a model of a plugin architecture (its SHA-256 must be the recorded one)",
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    saved = load_model(args.model, args.plugin)
    failed = 0
    for name in args.audio:
        try:
            probs = saved.probabilities(features_of_file(Path(name), saved.setting))
        except (DecodeError, OSError) as err:
            # One bad file must not hide the others' predictions.
            print(f"error: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        ranked = ", ".join(f"{genre} {p:.3f}" for genre, p in top_genres(saved, probs, args.top))
        print(f"{name}: {ranked}", flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
