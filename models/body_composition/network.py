"""3D U-Net of the body-composition paper (papers/body-composition-3d-unet.txt) at CPU scale.

Encoder: three max-pooling steps, the first 1x2x2 (keeps the 8-slice z extent), then 2x2x2 twice; decoder:
trilinear up-sampling + skip concatenation; every convolution is Conv3d 3x3x3 -> GroupNorm -> ReLU (two per
level); Kaiming initialisation; final 1x1x1 convolution to 8 logits (background + the 7 BODY_COMPOSITION
classes; softmax at inference). Input: 2 channels (soft-tissue and wide HU windows, ``preprocess.py``) on
8-slice patches of 5 mm slices, 4 mm pixels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES = 8
IN_CHANNELS = 2


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(min(groups, cout), cout), nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(min(groups, cout), cout), nn.ReLU(inplace=True))


class BodyCompUNet3D(nn.Module):
    def __init__(self, channels=(12, 24, 48, 96), in_channels: int = IN_CHANNELS, n_classes: int = N_CLASSES,
                 groups: int = 4):
        super().__init__()
        c = list(channels)
        self.enc = nn.ModuleList([_block(in_channels, c[0], groups), _block(c[0], c[1], groups),
                                  _block(c[1], c[2], groups), _block(c[2], c[3], groups)])
        self.dec = nn.ModuleList([_block(c[3] + c[2], c[2], groups), _block(c[2] + c[1], c[1], groups),
                                  _block(c[1] + c[0], c[0], groups)])
        self.head = nn.Conv3d(c[0], n_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.enc[0](x)
        s1 = self.enc[1](F.max_pool3d(s0, (1, 2, 2)))  # first pooling keeps the 8-slice z extent
        s2 = self.enc[2](F.max_pool3d(s1, (2, 2, 2)))
        h = self.enc[3](F.max_pool3d(s2, (2, 2, 2)))
        h = self.dec[0](torch.cat([F.interpolate(h, size=s2.shape[2:], mode="trilinear", align_corners=False), s2], 1))
        h = self.dec[1](torch.cat([F.interpolate(h, size=s1.shape[2:], mode="trilinear", align_corners=False), s1], 1))
        h = self.dec[2](torch.cat([F.interpolate(h, size=s0.shape[2:], mode="trilinear", align_corners=False), s0], 1))
        return self.head(h)


class BodyCompNet(nn.Module):
    """Bundle network: HU input (N, 1, Z, Y, X) -> 8 logits. The two HU windows are computed inside, so the
    TorchScript takes Hounsfield units like every CorpusCT model."""

    def __init__(self, channels=(8, 16, 32, 64), groups: int = 4):
        super().__init__()
        self.unet = BodyCompUNet3D(channels, IN_CHANNELS, N_CLASSES, groups)

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        soft = torch.clamp(hu, -250.0, 250.0) / 250.0
        wide = torch.clamp(hu, -1000.0, 1500.0) / 1000.0
        return self.unet(torch.cat([soft, wide], dim=1))
