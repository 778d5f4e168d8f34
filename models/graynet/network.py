"""GrayNet network: a small 2-D CNN on one axial slice resampled to 96 x 96 pixels of 5 mm (see
operators/graynet_range/preprocess.py). Input (N, 1, 96, 96) HU; three HU windows (soft tissue, lung, bone)
are computed inside the network. Output (N, 28): 24 body-part logits (labels.BODY_PARTS order), sex logit
(1 = male), age (years / 50), weight (kg / 50), reference z (AM ICRP-110 z in mm / 1000)."""

from __future__ import annotations

import torch
from torch import nn

N_PARTS = 24
OUT = {"parts": slice(0, 24), "sex": 24, "age": 25, "weight": 26, "ref_z": 27}
WINDOWS = ((40.0, 400.0), (-600.0, 1500.0), (400.0, 1800.0))  # (level, width)
AGE_SCALE, WEIGHT_SCALE, Z_SCALE = 50.0, 50.0, 1000.0


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class GrayNet(nn.Module):
    def __init__(self, width: int = 16, n_out: int = 28):
        super().__init__()
        lv = torch.tensor([w[0] for w in WINDOWS]).view(1, 3, 1, 1)
        ww = torch.tensor([w[1] for w in WINDOWS]).view(1, 3, 1, 1)
        self.register_buffer("win_lo", lv - ww / 2)
        self.register_buffer("win_w", ww)
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True))  # 48
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                                    nn.ReLU(inplace=True), nn.MaxPool2d(2)), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w))  # 3
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w * 9, 128), nn.ReLU(inplace=True),
                                  nn.Linear(128, n_out))

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        x = ((hu - self.win_lo) / self.win_w).clamp(0.0, 1.0)
        return self.head(self.features(self.stem(x)))
