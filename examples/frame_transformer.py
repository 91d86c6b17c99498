"""An example plugin (README "Search your own model"): a convolution embeds each frame, self-attention
mixes the frames (as in Won et al. 2019, "Toward interpretable music tagging with self-attention"),
and attention pooling, one learned score per frame, sums them into one vector."""

from dataclasses import dataclass

import torch
from torch import nn

from common.typed import require
from models.registry import ModelParams, register


@dataclass(frozen=True)
class FrameTransformerParams(ModelParams):
    width: int = 64  # size of a frame's embedding
    layers: int = 2  # self-attention layers
    heads: int = 4  # attention heads per layer; must divide width
    dropout: float = 0.1

    def check(self) -> None:
        require(self.width % self.heads == 0, "model.params.heads", self.heads, f"must divide width {self.width}")


class FrameTransformer(nn.Module):
    def __init__(self, p: FrameTransformerParams, n_bins: int, n_classes: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Conv1d(n_bins, p.width, 3, padding=1), nn.BatchNorm1d(p.width), nn.ReLU())
        layer = nn.TransformerEncoderLayer(p.width, p.heads, 2 * p.width, p.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.score, self.head = nn.Linear(p.width, 1), nn.Linear(p.width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, bins, frames) -> (batch, classes)
        h = self.encoder(self.embed(x).transpose(1, 2))  # (batch, frames, width)
        return self.head((torch.softmax(self.score(h), dim=1) * h).sum(dim=1))


@register("frame_transformer", FrameTransformerParams)
def build(params: FrameTransformerParams, n_bins: int, n_classes: int) -> nn.Module:
    return FrameTransformer(params, n_bins, n_classes)
