"""Fully connected organ-dose network of the radiomics paper (papers/radiomics-fcn-organ-dose.txt): six dense
layers (five hidden Linear -> BatchNorm1d -> ReLU -> Dropout(0.2) blocks and the output layer), one network per
body region predicting all of that region's organs. Added to the paper's design: a linear shortcut from the
inputs to the outputs. On a few hundred samples the plain six-layer stack did not even recover a noise-free
linear law (tests/test_radiomics_dose.py: 12.9 % MAPE); with the shortcut it does.

``DoseModel`` wraps the network with its scalers so that the exported TorchScript maps raw inputs to dose per
CTDIvol: inputs ``x`` = [selected radiomics features..., 1 / kVp, Dw (cm), per-organ inputs (train.inputs; the
TCM factor among them)] and ``tcm`` = per-organ tube-current factor (organ-weighted mA / scan mean mA, 1 without
modulation); the network predicts log(dose / (CTDIvol x tcm)) standardised; output = dose / CTDIvol (mGy per
mGy) per organ.
"""

from __future__ import annotations

import torch
import torch.nn as nn

HIDDEN = (128, 64, 64, 32, 32)
DROPOUT = 0.2


class DoseFCN(nn.Module):
    def __init__(self, n_in: int, n_out: int, hidden=HIDDEN, dropout: float = DROPOUT):
        super().__init__()
        layers: list[nn.Module] = []
        c = n_in
        for h in hidden:
            layers += [nn.Linear(c, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            c = h
        layers.append(nn.Linear(c, n_out))
        self.net = nn.Sequential(*layers)
        self.skip = nn.Linear(n_in, n_out)  # linear shortcut: the log-dose is close to linear in size features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z) + self.skip(z)


class DoseModel(nn.Module):
    """Scalers + network(s) (an ensemble of seeds: mean log-dose): raw inputs -> dose / CTDIvol per organ. Missing inputs (NaN, e.g. an organ absent
    from the scan) are set to the training mean (0 after scaling); scaled inputs are clipped to +-6."""

    def __init__(self, fcn, x_mean, x_std, y_mean, y_std):
        super().__init__()
        self.fcns = nn.ModuleList(fcn if isinstance(fcn, (list, tuple)) else [fcn])
        self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))
        self.register_buffer("x_std", torch.as_tensor(x_std, dtype=torch.float32))
        self.register_buffer("y_mean", torch.as_tensor(y_mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.as_tensor(y_std, dtype=torch.float32))

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.x_mean) / self.x_std
        z = torch.where(torch.isfinite(z), z, torch.zeros_like(z))
        return torch.clamp(z, -6.0, 6.0)

    def forward(self, x: torch.Tensor, tcm: torch.Tensor) -> torch.Tensor:
        z = self.scale(x)
        acc = torch.zeros(x.shape[0], self.y_mean.shape[0], dtype=x.dtype)
        for f in self.fcns:  # ensemble: mean of the members' log-dose
            acc = acc + f(z)
        t = acc / len(self.fcns) * self.y_std + self.y_mean
        tcm = torch.where(torch.isfinite(tcm), tcm, torch.ones_like(tcm))
        return torch.exp(t) * tcm
