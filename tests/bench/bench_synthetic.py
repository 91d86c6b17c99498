"""How hard is the built-in synthetic set? Validation clip accuracy of `fit()` with one choice
changed at a time (features, architecture, optimizer), side by side, on the default set.

    python -m tests.bench.bench_synthetic [--data DIR] [--epochs N]

The set must be learnable but not trivial: no variant near 100%, and the choices visibly apart.
"""

from __future__ import annotations

import argparse
import copy

import torch

from features.dataset import load_dataset
from features.extract import build_stores
from features.locate import default_stores_dir, resolve_data_root
from features.store import FeatureStore
from training import TrialConfig, fit

REFERENCE = {  # a small 2D CNN that trains in seconds per epoch on 2 CPU cores
    "features": {"kind": "mel", "hop_length": 1024, "n_bins": 64},
    "model": {"arch": "cnn2d", "params": {"depth": 3, "channels": 16}},
    "optimizer": {"name": "adam", "lr": 0.003},
    "schedule": {"name": "cosine"},
    "training": {"segment_seconds": 4.0, "segments_per_clip": 8, "batch_size": 32, "eval_overlap": 0.0},
}
VARIANTS = {  # name → (section, values replacing the reference's)
    "reference: log-mel 64, cnn2d, adam": (None, None),
    "features: mfcc 40": ("features", {"kind": "mfcc", "hop_length": 1024, "n_bins": 40}),
    "features: chroma 12": ("features", {"kind": "chroma", "hop_length": 1024, "n_bins": 12}),
    "architecture: cnn1d": ("model", {"arch": "cnn1d", "params": {"depth": 3, "channels": 64}}),
    "architecture: resnet": ("model", {"arch": "resnet", "params": {"depth": 3, "channels": 16}}),
    "optimizer: sgd 0.01, momentum 0.9": ("optimizer", {"name": "sgd", "lr": 0.01, "momentum": 0.9}),
    "optimizer: sgd 0.001, no momentum": ("optimizer", {"name": "sgd", "lr": 0.001, "momentum": 0.0}),
}


def variant_config(section: str | None, values: dict | None, epochs: int) -> TrialConfig:
    raw = copy.deepcopy(REFERENCE)
    if section:
        raw[section] = values
    raw["training"]["max_epochs"] = epochs
    return TrialConfig.from_dict(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="dataset root (default: the built-in synthetic set)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per variant")
    args = parser.parse_args()
    torch.set_num_threads(2)
    dataset = load_dataset(resolve_data_root(args.data))
    configs = {name: variant_config(*change, args.epochs) for name, change in VARIANTS.items()}
    settings = list({config.features: None for config in configs.values()})
    stores = build_stores(dataset, settings, default_stores_dir(dataset.root))
    print(f"{'variant':36} {'best valid clip acc':>20} {'final train acc':>16} {'s/epoch':>8}")
    for name, config in configs.items():
        result = fit(config, FeatureStore(stores[config.features]).load_fit_data())
        seconds = sum(m.epoch_seconds for m in result.history) / len(result.history)
        print(f"{name:36} {result.best.valid_clip_acc:20.3f} {result.history[-1].train_acc:16.3f} {seconds:8.1f}")


if __name__ == "__main__":
    main()
