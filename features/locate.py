"""Where data and stores live when the user does not say: `--data`, else `$GTZAN_DIR`, else
`~/gtzan`, else the built-in synthetic set, generated once into the cache folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm


def cache_dir() -> Path:
    """`$GENRE_SEARCH_CACHE`, else `$XDG_CACHE_HOME/genre-search`, else `~/.cache/genre-search`."""
    if os.environ.get("GENRE_SEARCH_CACHE"):
        return Path(os.environ["GENRE_SEARCH_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "genre-search"


def resolve_data_root(data: str | Path | None) -> Path:
    """The dataset folder a command should use; generates the synthetic set on first use."""
    if data:
        return Path(data).expanduser()
    if os.environ.get("GTZAN_DIR"):
        return Path(os.environ["GTZAN_DIR"]).expanduser()
    home_gtzan = Path.home() / "gtzan"
    if home_gtzan.is_dir():
        return home_gtzan
    return synthetic_default()


def synthetic_default() -> Path:
    from features import synth  # the generator is only needed when nothing else is there

    root = cache_dir() / f"synthetic-seed0-{synth.DEFAULT_CLIPS_PER_GENRE}x{synth.DEFAULT_SECONDS:g}s"
    if root.is_dir():
        tqdm.write(f"no --data, $GTZAN_DIR or ~/gtzan: using the built-in synthetic set at {root}")
    else:
        tqdm.write(f"no --data, $GTZAN_DIR or ~/gtzan: generating the built-in synthetic set once into {root}")
        synth.generate_dataset(root)
    return root


def default_stores_dir(data_root: Path) -> Path:
    """One stores folder per dataset root, so two datasets never rebuild each other's stores."""
    resolved = Path(data_root).expanduser().resolve()
    tag = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return cache_dir() / "stores" / f"{resolved.name}-{tag}"
