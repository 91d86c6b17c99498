"""Does audio-effect augmentation help? The best cnn2d config trained with and without augmented
copies of the training clips, same seeds, side by side, on the default synthetic set.

    python -m tests.bench.bench_augment [--config BEST_CONFIG.json] [--copies N] [--seeds N] [--data DIR]

The config defaults to `best_cnn2d_config.json` beside this script: the best trial of a default
search (`python run_search.py --space cnn2d.yaml`, then 24 trials, best valid 0.891). The effects
and their ranges are those of `spaces/cnn2d.yaml`'s `features.audio_augment`, with `--copies`
copies per training clip. Each run is `fit()` for the config's epochs, keeping its best epoch (as
`report.py` does); two runs at a time, one torch thread each. Validation accuracy only: the test split is `report.py`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from features.augment import AudioAugment
from features.dataset import load_dataset
from features.extract import build_stores
from features.locate import default_stores_dir, resolve_data_root
from search.space import load_space
from training import TrialConfig

DEFAULT_CONFIG = Path(__file__).with_name("best_cnn2d_config.json")


def shipped_effect_ranges() -> dict[str, list[float]]:
    """The effects and ranges that `spaces/cnn2d.yaml` offers under `features.audio_augment`."""
    values = load_space("cnn2d.yaml").sections["features"].values
    prefix = "audio_augment."
    return {
        key.removeprefix(prefix): value
        for key, value in values.items()
        if key.startswith(prefix) and isinstance(value, list)
    }


def shipped_augmentation(copies: int) -> AudioAugment:
    return AudioAugment(copies=copies, **{key: tuple(value) for key, value in shipped_effect_ranges().items()})


def train_once(config: dict, store: str, seed: int) -> dict:
    """One run in a worker process: best validation clip accuracy and its epoch."""
    import torch

    from features.store import FeatureStore
    from training import fit

    torch.set_num_threads(1)
    config = {**config, "training": {**config["training"], "seed": seed}}
    started = time.perf_counter()
    result = fit(TrialConfig.from_dict(config), FeatureStore(store).load_fit_data())
    return {"acc": result.best.valid_clip_acc, "epoch": result.best.epoch, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="a best_config.json from a search")
    parser.add_argument("--copies", type=int, default=2, help="augmented copies per training clip")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per variant (0, 1, ...)")
    parser.add_argument("--data", help="dataset root (default: the built-in synthetic set)")
    args = parser.parse_args()
    plain = TrialConfig.from_dict(json.loads(Path(args.config).read_text())["config"])
    augment = shipped_augmentation(args.copies)
    augmented = dataclasses.replace(plain, features=dataclasses.replace(plain.features, audio_augment=augment))
    print(f"config: {args.config}\naugmentation: {augment}")
    dataset = load_dataset(resolve_data_root(args.data))
    started = time.perf_counter()
    stores = build_stores(dataset, [plain.features, augmented.features], default_stores_dir(dataset.root))
    print(f"stores ready in {time.perf_counter() - started:.0f} s")
    variants = {"without augmentation": plain, f"with {args.copies} augmented copies": augmented}
    jobs = [(name, seed) for name in variants for seed in range(args.seeds)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            job: pool.submit(train_once, variants[job[0]].to_dict(), str(stores[variants[job[0]].features]), job[1])
            for job in jobs
        }
        results = {job: future.result() for job, future in futures.items()}
    report(variants, results, args.seeds)


def report(variants: dict, results: dict, seeds: int) -> None:
    print(f"\n{'variant':32} {'valid clip acc (mean ± std)':>28} {'per seed':>24} {'min/run':>8}")
    for name in variants:
        accs = np.array([results[(name, seed)]["acc"] for seed in range(seeds)])
        minutes = np.mean([results[(name, seed)]["seconds"] for seed in range(seeds)]) / 60
        per_seed = " ".join(f"{a:.3f}" for a in accs)
        print(f"{name:32} {accs.mean():19.3f} ± {accs.std():.3f} {per_seed:>24} {minutes:8.1f}")


if __name__ == "__main__":
    main()
