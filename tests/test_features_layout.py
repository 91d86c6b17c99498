"""How the features package is cut: training gets its in-memory arrays (`features.arrays`) without
h5py, which only reading and writing store files needs (`features.store`, `features.writer`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_importing_the_training_loop_does_not_import_h5py():
    script = "import sys, training.fit\nprint('h5py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
