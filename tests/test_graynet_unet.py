"""GrayNet's encoder inside the organ U-Net (models/organ_segmentation/graynet_unet.py): GrayNet's trained weights
land in the right layers (the encoder computes what GrayNet computes), and HU rebuilt from the three cached window
images matches the HU within the windows' quantisation."""

from __future__ import annotations

import numpy as np
import torch

from models.organ_segmentation.graynet_unet import GrayNetUNet, hu_from_windows, load_graynet_encoder
from operators.common.paths import REPO_ROOT
from operators.organ_segmentation import preprocess as pp

GRAYNET = REPO_ROOT / "models" / "graynet"


def test_encoder_computes_graynets_own_features():
    net = GrayNetUNet().eval()
    loaded = load_graynet_encoder(net, GRAYNET)
    assert any(k.startswith("features.3") for k in loaded) and "stem.0.weight" in loaded
    ts = torch.jit.load(str(GRAYNET / "models" / "model.ts"), map_location="cpu").float().eval()
    hu = torch.from_numpy(np.random.default_rng(0).normal(0.0, 300.0, (2, 1, 96, 96)).astype(np.float32))
    with torch.inference_mode():
        ref = ts.features(ts.stem(((hu - ts.win_lo) / ts.win_w).clamp(0.0, 1.0)))
        _, _, mine = net.encode(hu)
    assert torch.allclose(mine, ref, atol=1e-4)
    random_init = GrayNetUNet().eval()
    with torch.inference_mode():
        assert not torch.allclose(random_init.encode(hu)[2], ref, atol=1e-2)


def test_output_has_the_input_size_for_the_organ_grid():
    net = GrayNetUNet().eval()
    with torch.inference_mode():
        out = net(torch.zeros(1, 1, *pp.NET_SHAPE))  # 224 x 304: 304 / 32 is not whole
    assert out.shape == (1, 1, *pp.NET_SHAPE)


def test_hu_from_windows_within_quantisation():
    hu = np.array([-1000.0, -700.0, -100.0, -69.0, 0.0, 40.0, 169.0, 300.0, 700.0, 1290.0], np.float32)
    levels = np.stack([np.round((np.clip(hu, *pp.WINDOWS[w]) - pp.WINDOWS[w][0]) / np.diff(pp.WINDOWS[w])[0]
                                * (pp.N_LEVELS - 1)) for w in ("soft", "lung", "bone")]).astype(np.uint8)
    step = {w: np.diff(pp.WINDOWS[w])[0] / (pp.N_LEVELS - 1) for w in pp.WINDOWS}
    tol = np.where(hu < -70, step["lung"], np.where(hu > 170, step["bone"], step["soft"])) / 2 + 1e-3
    assert np.all(np.abs(hu_from_windows(levels) - hu) <= tol)
