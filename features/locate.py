"""Where data and stores live when the user does not say: `--data`, else `$GTZAN_DIR`, else
`~/gtzan`, else the built-in synthetic set, generated once into the cache folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from filelock import FileLock, Timeout
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
    """The built-in synthetic set in the cache folder, generated on first use.

    Two first runs at once generate it once: the second waits on a lock beside the set while the
    first generates, then uses the finished set. A generation that was killed leaves nothing that
    counts (the set appears only when complete), and the next one removes its partial folder.
    """
    from features import synthetic  # the generator is only needed when nothing else is there

    root = cache_dir() / f"synthetic-seed0-{synthetic.DEFAULT_CLIPS_PER_GENRE}x{synthetic.DEFAULT_SECONDS:g}s"
    if not root.is_dir():
        lock = _acquire_lock(root)
        try:
            if not root.is_dir():  # not finished by the run we waited for (none, or it failed)
                tqdm.write(f"no --data, $GTZAN_DIR or ~/gtzan: generating the built-in synthetic set once into {root}")
                return synthetic.generate_dataset(root)
        finally:
            lock.release()
    tqdm.write(f"no --data, $GTZAN_DIR or ~/gtzan: using the built-in synthetic set at {root}")
    return root


def _acquire_lock(root: Path) -> FileLock:
    """The lock beside `root` that one generation of it holds, waited for if another run has it."""
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root.with_name(f"{root.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        tqdm.write(f"another run is generating the built-in synthetic set into {root}: waiting for it")
        lock.acquire()
    return lock


def default_stores_dir(data_root: Path, variant: str = "") -> Path:
    """One stores folder per dataset root and split (`variant`: features.layouts.stores_variant),
    so two datasets, or two splits of one folder, never rebuild each other's stores."""
    resolved = Path(data_root).expanduser().resolve()
    tag = hashlib.sha256(f"{resolved}{variant}".encode()).hexdigest()[:8]
    return cache_dir() / "stores" / f"{resolved.name}-{tag}"
