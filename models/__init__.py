"""Model architectures for GTZAN genre classification, each built from a typed params config:
every model maps a (batch, bins, frames) spectrogram batch of any length to (batch, n_classes) logits.
A researcher's own architectures register the same way from files a space names (models/plugins.py)."""

from __future__ import annotations

# Importing the family modules fills the registry through their @register decorators.
from models import baseline, cnn1d, cnn2d, crnn, resnet, shortchunk  # noqa: F401
from models.registry import architecture_names, build_model, check_input_fits, min_frames, params_class

__all__ = ["architecture_names", "build_model", "check_input_fits", "min_frames", "params_class"]
