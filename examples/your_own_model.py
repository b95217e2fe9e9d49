"""Count your own model: functional ops inside forward are counted too, and nothing runs.

    python examples/your_own_model.py
"""

import torch
import torch.nn.functional as F
from torch import nn

import archlab


class TinyUNet(nn.Module):
    """A two-level encoder-decoder with a skip, written with functional calls."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.enc = nn.Conv2d(3, width, 3, padding=1)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.head = nn.Conv2d(2 * width, 1, 1)

    def forward(self, x):
        skip = F.relu(self.enc(x))
        y = F.relu(self.down(skip))
        y = self.up(y)
        return torch.sigmoid(self.head(torch.cat([y, skip], dim=1)))


model = TinyUNet()
result = archlab.count(model, input_size=(3, 128, 128), depth=1)
print(f"params {result.params:,}   MACs {result.macs:,}   FLOPs {result.flops:,}")
print("other ops:", {k: v for k, v in result.other_ops.items() if v})
print("not counted:", result.unsupported_ops or "nothing")
for layer in result.layers:
    print(f"  {layer.name:5s} {layer.type:16s} {'x'.join(map(str, layer.output_shape)):14s} {layer.macs:>12,}")

rf = archlab.receptive_field(model, input_size=(3, 128, 128))
print("receptive field of the output:", rf.rf["rf"], "pixels")
assert model.training, "archlab leaves the model's mode as it found it"
