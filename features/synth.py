"""Command line of the built-in synthetic dataset (`features.synthetic`): writes it in GTZAN's
layout into a new folder.

    python -m features.synth --out DIR [--clips-per-genre N] [--seconds S] [--seed K] [--workers W]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from common.errors import exit_on_user_error
from features.synthetic import DEFAULT_CLIPS_PER_GENRE, DEFAULT_SECONDS, GENRES, generate_dataset


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m features.synth",
        description="Write the built-in synthetic 8-genre dataset in GTZAN's layout.",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--clips-per-genre", type=int, default=DEFAULT_CLIPS_PER_GENRE)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of each clip")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    out = generate_dataset(args.out, args.clips_per_genre, args.seconds, args.seed, args.workers)
    print(f"wrote {args.clips_per_genre * len(GENRES)} synthetic clips to {out}")


if __name__ == "__main__":
    main()
