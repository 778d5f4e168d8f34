"""The per-organ light 2D residual U-Net (papers/multi-organ-resunet.txt, "light Res-UNet", ~533 K parameters).

A trunk, MONAI ``UNet(spatial_dims=2, num_res_units=2)`` with five levels of channels 8, 16, 32, 64, 128
(strided-conv downsampling by 2 four times, so 224 x 304 -> 14 x 19 at the bottom), two residual units per
level, batch norm, PReLU, giving ``HEAD_FEATURES`` (8) full-resolution feature maps; then PReLU and a 1 x 1
convolution head with one output per organ. 410 K parameters: a little lighter than the paper's 533 K so
that the 23 bundles stay below 25 MB together with fp16 weights (about 1 MB each); full resolution keeps only
8 channels, which keeps CPU inference fast (all 23 organs of a 300-slice whole-body series in about 25 s on
2 cores: benchmarks/bench_organ_segmentation.py).

The head makes multi-organ training exact to split: a network trained with one output per organ of a window
family (``build_network(n_organs)``) gives each organ's one-output network by keeping its row of the head
(``single_output``), identical in output to that channel.

Input (N, 1, 224, 304) float32 in [0, 1] (``operators.organ_segmentation.preprocess.to_network`` with the
organ's window); output logits (N, 1, 224, 304): sigmoid >= ``THRESHOLD`` is the organ.

Export: ``export_torchscript`` scripts the network with **fp16 weights**; a loader casts them back to fp32
(``module.float()``) before running on the CPU (``load_for_inference``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IN_CHANNELS = 1
CHANNELS = (8, 16, 32, 64, 128)
STRIDES = (2, 2, 2, 2)
NUM_RES_UNITS = 2
HEAD_FEATURES = 8
THRESHOLD = 0.5
HEAD_BIAS_INIT = -4.0  # sigmoid 0.018: organs are a small part of a slice


def build_network(out_channels: int = 1, in_channels: int = IN_CHANNELS) -> nn.Module:
    """Trunk (MONAI UNet to ``HEAD_FEATURES`` maps) -> PReLU -> 1 x 1 head with ``out_channels`` logits."""
    from collections import OrderedDict

    from monai.networks.nets import UNet

    trunk = UNet(spatial_dims=2, in_channels=in_channels, out_channels=HEAD_FEATURES, channels=CHANNELS,
                 strides=STRIDES, num_res_units=NUM_RES_UNITS, norm="batch")
    head = nn.Conv2d(HEAD_FEATURES, out_channels, kernel_size=1)
    nn.init.constant_(head.bias, HEAD_BIAS_INIT)
    return nn.Sequential(OrderedDict(trunk=trunk, act=nn.PReLU(HEAD_FEATURES), head=head))


def single_output(net: nn.Module, channel: int) -> nn.Module:
    """A copy of multi-output ``net`` that keeps only head output ``channel`` (same logits as that channel)."""
    import copy

    one = copy.deepcopy(net)
    w, b = net.head.weight.detach(), net.head.bias.detach()
    one.head = nn.Conv2d(w.shape[1], 1, kernel_size=1)
    with torch.no_grad():
        one.head.weight.copy_(w[channel:channel + 1])
        one.head.bias.copy_(b[channel:channel + 1])
    return one


def n_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def export_torchscript(net: nn.Module, path: str | Path, fp16: bool = True) -> Path:
    """Script ``net`` (eval mode) and save it; weights stored as fp16 when ``fp16`` (cast to fp32 at load)."""
    import copy

    m = copy.deepcopy(net).cpu().eval()
    if fp16:
        m = m.half()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(m), str(path))
    return path


def load_for_inference(bundle_dir: str | Path):
    """(fp32 TorchScript module in eval mode, metadata) of an organ bundle through the common bundle loader;
    the fp16 weights are cast to fp32 here (the CPU runs fp32)."""
    from operators.common.bundle import load_torchscript_bundle

    module, meta = load_torchscript_bundle(bundle_dir, "organ segmentation")
    return module.float().eval(), meta
