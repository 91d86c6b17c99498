"""Ray uploads its snapshot of the run and the searcher's snapshot as separate files; a driver killed
between the two leaves the run's snapshot newer. This forces that case instead of waiting for it:
a tiny search is started, the searcher's files are copied early, the driver is killed (SIGKILL) once
the run's snapshot holds at least 3 trials, the early copies are put back, and the search is resumed.

    python -m tests.manual.stale_searcher /tmp/stale

It prints the resume's exit status, its warnings, and the leaderboard's size (num_samples is 6).
Before the fix of 2026-12-07 the resume ended with KeyError in OptunaSearch.on_trial_result."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from common import upstream
from common.errors import UserError
from tests.conftest import make_layout
from tests.test_search import REPO, tiny_space

NUM_SAMPLES = 6


def run_snapshot_trials(folder: Path) -> list[str]:
    snapshot = upstream.newest_run_state(folder)
    try:
        return list(upstream.run_state_trials(snapshot, "trial_id")) if snapshot else []
    except UserError:  # caught while Ray wrote it
        return []


def kill_with_stale_searcher(command: list[str], folder: Path, early: Path) -> None:
    """Start `command`, copy the searcher's files to `early` once they exist, kill it once the run's
    snapshot holds 3 trials, and put the early copies back."""
    driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(run_snapshot_trials(folder)) < 3 or not early.exists():
        searcher_files = [*folder.glob("searcher-state-*.pkl"), *folder.glob("search_gen_state-*.json")]
        if len(searcher_files) == 2 and not early.exists():
            early.mkdir()
            for file in searcher_files:
                shutil.copy(file, early / file.name)
            print("searcher's files copied; the run's snapshot holds", run_snapshot_trials(folder))
        time.sleep(0.2)
    driver.kill()
    driver.wait()
    print("driver killed; the run's snapshot holds", run_snapshot_trials(folder))
    for file in early.iterdir():
        shutil.copy(file, folder / file.name)


def main(base: Path) -> None:
    data, folder, early = base / "data", base / "stale", base / "early-searcher"
    shutil.rmtree(base, ignore_errors=True)
    make_layout(data, genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    base.mkdir(exist_ok=True)
    where = ["--storage", str(base), "--name", "stale"]
    space = tiny_space(base, num_samples=NUM_SAMPLES, max_epochs=6)
    kill_with_stale_searcher(
        [sys.executable, "run_search.py", "--space", str(space), "--data", str(data), *where], folder, early
    )
    resumed = subprocess.run(
        [sys.executable, "run_search.py", *where, "--resume"], cwd=REPO, capture_output=True, text=True
    )
    print("resume exit status:", resumed.returncode)
    print("\n".join(line for line in resumed.stderr.splitlines() if "Error" in line or "WARNING: trial" in line))
    if resumed.returncode == 0:
        board = pd.read_csv(folder / "leaderboard.csv")
        print(f"leaderboard: {len(board)} trials (num_samples {NUM_SAMPLES}), each once: {board['trial'].is_unique}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
