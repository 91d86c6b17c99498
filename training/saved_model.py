"""A trained model on disk, as the report saves it (`report/model-seed0.pt`) and `predict.py`
reads it.

The file holds plain containers and tensors only (read with ``torch.load(weights_only=True)``, so
opening one cannot run code): the trial config that built the network, its weights, the class
names, the feature setting and the training split's normalisation statistics; for a plugin
architecture, also the plugin file's path and SHA-256. That record runs nothing: the reader names
the plugin file itself (`predict.py --plugin FILE`), imported only when its SHA-256 is the recorded one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.errors import UserError
from common.partials import atomic_write
from features.arrays import SplitArrays
from features.settings import FeatureSetting
from models.plugins import load_named, plugin_of
from models.registry import build_model
from training.config import TrialConfig
from training.evaluate import predict_clips
from training.segments import prepare_split

MODEL_FORMAT = "genre-search-model"
MODEL_FORMAT_VERSION = 1
REQUIRED_KEYS = ("config", "classes", "setting", "mean", "std", "state_dict")
# prepare_split takes labelled arrays; a clip of unknown genre gets this label, which nothing reads
# (predict_clips never looks at labels) and which would fail loudly as an index if anything did.
NO_LABEL = -1


@dataclass(frozen=True)
class SavedModel:
    config: TrialConfig
    classes: tuple[str, ...]
    mean: np.ndarray  # (bins,) float32, the training split's per-bin statistics
    std: np.ndarray
    model: nn.Module  # on the CPU, in eval mode
    about: dict[str, Any]  # where it came from: experiment, trial, seed, data it was trained on

    @property
    def setting(self) -> FeatureSetting:
        return self.config.features

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(classes,) probabilities of one clip from its stored features (bins, frames): cut into the
        segments validation and test use, their probabilities averaged."""
        clip = SplitArrays.of_clips([features], labels=[NO_LABEL], clip_ids=[""])
        from features.compute import silence_frame  # librosa: loaded where a clip is predicted

        segment_frames, silence = self.config.segment_frames, silence_frame(self.setting)
        cpu = torch.device("cpu")
        prepared = prepare_split(clip, self.mean, self.std, cpu, self.config.min_frames, silence=silence)
        return predict_clips(self.model, prepared, segment_frames, self.config.training.eval_overlap)[0]


def save_model(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    config: TrialConfig,
    classes: tuple[str, ...],
    stats: tuple[np.ndarray, np.ndarray],
    about: dict[str, Any],
) -> None:
    """Write a model file; `about` must hold plain values only (str, numbers, lists, dicts)."""
    mean, std = stats
    plugin = plugin_of(config.model.arch)
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "config": config.to_dict(),
        "classes": list(classes),
        "setting": config.features.to_dict(),
        "mean": torch.as_tensor(np.asarray(mean, dtype=np.float32)),
        "std": torch.as_tensor(np.asarray(std, dtype=np.float32)),
        "state_dict": {key: value.detach().cpu() for key, value in state_dict.items()},
        "about": about,
        "plugin": plugin.to_dict() if plugin else None,  # the file that registered the architecture
    }
    with atomic_write(path, "wb") as file:  # a report killed mid-save leaves no truncated model
        torch.save(payload, file)


def load_model(path: str | Path, plugins: Sequence[str | Path] = ()) -> SavedModel:
    """Read and rebuild a saved model; anything that does not match is a one-line `UserError`.
    A plugin architecture needs its file among `plugins`, with the SHA-256 the model records."""
    payload = _read_payload(Path(path))
    config = _config(payload, path)
    recorded = [payload["plugin"]] if payload.get("plugin") is not None else []
    load_named(config.model.arch, recorded, plugins, str(path))
    try:
        if FeatureSetting.from_dict(payload["setting"]) != config.features:
            raise UserError("its feature setting differs from its config's")
        classes = tuple(str(name) for name in payload["classes"])
        mean, std = (payload[key].float().numpy() for key in ("mean", "std"))
        if not (mean.shape == std.shape == (config.features.n_bins,)):
            raise UserError(f"statistics of shape {mean.shape} do not fit {config.features.n_bins} bins")
        model = build_model(config.model.arch, config.model.params, config.features.n_bins, len(classes))
        _check_weights(model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"])
    except UserError as err:
        raise UserError(f"{path}: model file does not match: {err}") from err
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as err:
        raise UserError(f"{path}: model file does not match: {type(err).__name__}: {err}".splitlines()[0]) from err
    model.eval()
    return SavedModel(config, classes, mean, std, model, dict(payload.get("about") or {}))


def _config(payload: dict[str, Any], path: str | Path) -> TrialConfig:
    try:
        return TrialConfig.from_dict(payload["config"])
    except UserError as err:
        raise UserError(f"{path}: model file does not match: {err}") from err
    except (TypeError, AttributeError, KeyError, ValueError) as err:
        raise UserError(f"{path}: model file does not match: {type(err).__name__}: {err}".splitlines()[0]) from err


def _check_weights(model: nn.Module, weights: dict[str, Any]) -> None:
    """Name what differs between the weights and the network the config builds, in one line
    (load_state_dict's own message lists every key over many lines)."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - weights.keys())
    unexpected = sorted(weights.keys() - expected.keys())
    reshaped = sorted(
        key
        for key in expected.keys() & weights.keys()
        if not isinstance(weights[key], torch.Tensor) or weights[key].shape != expected[key].shape
    )
    problems = [
        f"{len(keys)} {what} (first: {keys[0]})"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
        if keys
    ]
    if problems:
        raise UserError(f"weights do not fit the network its config builds: {'; '.join(problems)}")


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for bytes that are not a checkpoint
        raise UserError(f"{path}: not a readable model file ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise UserError(f"{path}: not a genre-search model file (save one with report.py)")
    if payload.get("format_version") != MODEL_FORMAT_VERSION:
        raise UserError(f"{path}: model format {payload.get('format_version')!r}, expected {MODEL_FORMAT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise UserError(f"{path}: model file does not match: missing {', '.join(missing)}")
    return payload
