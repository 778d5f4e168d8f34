"""GrayNet's encoder as the pretrained initialisation of an organ network (issue 4, "try GrayNet's encoder as the
pretrained initialisation and report Dice with and without, as the paper did"; papers/graynet-range-selector.txt).

GrayNet (``models.graynet.network``) is a classifier: HU in, three HU windows computed inside the network, a stride-2
stem and four conv blocks (16-16-32-64-128 channels) each ending in a 2x2 max-pool. ``GrayNetUNet`` keeps exactly
those layers as a U-Net encoder (so GrayNet's weights load into them by name) and adds a decoder: at each scale the
encoder's features before the pool are the skip connection, joined by the decoder path up-sampled to their size (two 3x3 conv +
BN + ReLU), and a 1x1 convolution gives one organ logit per pixel at the input resolution.

Input: HU slices on the organ network's grid (N, 1, 224, 304) (the operator's body-box crop and resize; no window,
GrayNet's own windows apply). GrayNet was trained on 96 x 96 slices of 5 mm pixels; here pixels are 1.2-1.8 mm, so
the pretrained filters see anatomy at about 3x their training scale. This network is for the with / without
comparison in ``benchmarks/eval_graynet_init.py`` only; the operator's bundles are ``network.build_network``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.graynet.network import GrayNet
from models.organ_segmentation.data import WINDOW_NAMES
from operators.organ_segmentation import preprocess as pp


def _decoder_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class GrayNetUNet(nn.Module):
    """GrayNet's windows, stem and feature blocks as encoder (same module names as ``GrayNet``), U-Net decoder."""

    def __init__(self, width: int = 16):
        super().__init__()
        g = GrayNet(width=width)
        self.register_buffer("win_lo", g.win_lo.clone())
        self.register_buffer("win_w", g.win_w.clone())
        self.stem, self.features = g.stem, g.features
        w = width
        skips = (w, 2 * w, 4 * w, 8 * w)  # features[i] before its pool: 1/2, 1/4, 1/8, 1/16 of the input
        self.dec = nn.ModuleList()
        cin = 8 * w  # bottleneck: features[3] after its pool, 1/32
        for s in reversed(skips):
            self.dec.append(_decoder_block(cin + s, s))
            cin = s
        self.final = nn.Sequential(_decoder_block(cin + 3, w), nn.Conv2d(w, 1, 1))

    def encode(self, hu: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(the three windows (N, 3, H, W), each block's features before its pool, the last block's pooled output:
        what GrayNet's own ``features(stem(.))`` computes)."""
        x0 = ((hu - self.win_lo) / self.win_w).clamp(0.0, 1.0)
        x = self.stem(x0)
        skips = []
        for block in self.features:
            x = block[:-1](x)  # everything but the pool
            skips.append(x)
            x = block[-1](x)
        return x0, skips, x

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        x0, skips, x = self.encode(hu)
        for dec, s in zip(self.dec, reversed(skips), strict=True):  # up-sample to the skip's size (odd sizes)
            x = dec(torch.cat([F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        x = F.interpolate(x, size=x0.shape[-2:], mode="bilinear", align_corners=False)
        return self.final(torch.cat([x, x0], 1))


def load_graynet_encoder(net: GrayNetUNet, graynet_bundle: str | Path) -> list[str]:
    """Copy GrayNet's trained windows, stem and feature blocks into ``net``; returns the parameter names loaded."""
    sd = torch.jit.load(str(Path(graynet_bundle) / "models" / "model.ts"), map_location="cpu").state_dict()
    enc = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()
           if k.split(".")[0] in ("win_lo", "win_w", "stem", "features")}
    missing = [k for k in enc if k not in net.state_dict()]
    if missing:
        raise ValueError(f"GrayNet parameters without a place in the encoder: {missing[:5]}")
    net.load_state_dict(enc, strict=False)
    return sorted(enc)


def hu_from_windows(img3: np.ndarray) -> np.ndarray:
    """Approximate HU (float32) from the three cached window images (soft, lung, bone; uint8 levels 0..239, axis 0
    or 1 of length 3 along ``WINDOW_NAMES``): the soft window where it is not clipped (1 HU per level), else the lung
    window below it (5 HU per level) or the bone window above it (6.3 HU per level). -1000..1300 HU."""
    img3 = np.asarray(img3)
    ax = 0 if img3.shape[0] == len(WINDOW_NAMES) else 1
    x = {name: np.take(img3, i, axis=ax).astype(np.float32) / (pp.N_LEVELS - 1) for i, name in enumerate(WINDOW_NAMES)}
    hu = {name: pp.WINDOWS[name][0] + v * (pp.WINDOWS[name][1] - pp.WINDOWS[name][0]) for name, v in x.items()}
    out = np.where(x["soft"] <= 0.0, hu["lung"], np.where(x["soft"] >= 1.0, hu["bone"], hu["soft"]))
    return out.astype(np.float32)
