"""GrayNet input: every axial slice resampled to a fixed physical grid (96 x 96 pixels of 5 mm = 48 cm) centred
on the body, in radiological canonical orientation (rows anterior -> posterior, columns patient right -> left).

The same function prepares training slices (models/graynet/data.py) and inference input, so that the
network sees synthetic and real CT the same way. HU windows are applied inside the network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from operators.common.render import canonical_lps
from operators.common.volume import CTVolume

GRID = 96
PIXEL_MM = 5.0


def _body_centre_mm(pooled: np.ndarray, px_mm: float) -> tuple[float, float]:
    """(row, col) centre in mm from the image origin of the body in a pooled (n, h, w) HU stack: the largest
    component of the tissue seen in at least 30 % of the slices, after an opening that removes the table."""
    m = (pooled > -400).mean(axis=0) > 0.3
    m = ndimage.binary_opening(m, iterations=2)
    lab, n = ndimage.label(m)
    if n == 0:
        h, w = pooled.shape[1:]
        return (h - 1) / 2 * px_mm, (w - 1) / 2 * px_mm
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    jj, ii = np.nonzero(lab == int(np.argmax(sizes)) + 1)
    return (jj.min() + jj.max()) / 2 * px_mm, (ii.min() + ii.max()) / 2 * px_mm


def prepare_slices(hu: np.ndarray, affine_lps: np.ndarray, grid: int = GRID, pixel_mm: float = PIXEL_MM,
                   batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(slices (n, grid, grid) float32 HU in **volume slice order**, slice z mm) of an axial (z, y, x) volume."""
    can, aff = canonical_lps(hu, affine_lps)
    flipped = bool(np.asarray(affine_lps)[2, 2] < 0)  # canonical runs inferior -> superior
    dy, dx = abs(float(aff[1, 1])), abs(float(aff[0, 0]))
    f = max(1, int(round(pixel_mm / max(dy, dx))))
    pooled = []
    for s in range(0, can.shape[0], batch):
        t = torch.from_numpy(np.array(can[s:s + batch], dtype=np.float32, order="C", copy=True)).clamp_(-1024.0, 3000.0)
        t = F.avg_pool2d(t[:, None], f, f, ceil_mode=True, count_include_pad=False)[:, 0] if f > 1 else t
        pooled.append(t)
    p = torch.cat(pooled)
    h, w = p.shape[1:]
    # mm are measured from the centre of original pixel (0, 0); pooled pixel q is centred on original
    # index q * f + (f - 1) / 2
    sub = p[:: max(1, p.shape[0] // 64)].numpy()
    qj, qi = _body_centre_mm(sub, 1.0)
    cy, cx = (qj * f + (f - 1) / 2) * dy, (qi * f + (f - 1) / 2) * dx
    half = (grid - 1) / 2.0
    r_mm = cy + (np.arange(grid) - half) * pixel_mm
    c_mm = cx + (np.arange(grid) - half) * pixel_mm
    r_idx = (r_mm / dy - (f - 1) / 2) / f  # pooled index
    c_idx = (c_mm / dx - (f - 1) / 2) / f
    gy = torch.from_numpy((2 * r_idx + 1) / h - 1).float()
    gx = torch.from_numpy((2 * c_idx + 1) / w - 1).float()
    gyy, gxx = torch.meshgrid(gy, gx, indexing="ij")
    g = torch.stack([gxx, gyy], -1)[None]
    out = []
    for s in range(0, p.shape[0], batch):
        x = p[s:s + batch, None] + 1000.0  # pad with air
        out.append(F.grid_sample(x, g.expand(x.shape[0], -1, -1, -1), mode="bilinear", padding_mode="zeros",
                                 align_corners=False)[:, 0] - 1000.0)
    res = torch.cat(out).numpy()
    z = aff[2, 2] * np.arange(can.shape[0]) + aff[2, 3]
    if flipped:
        res, z = res[::-1], z[::-1]
    return np.ascontiguousarray(res, dtype=np.float32), np.ascontiguousarray(z)


def prepare_volume(vol: CTVolume, **kw) -> tuple[np.ndarray, np.ndarray]:
    return prepare_slices(vol.hu, vol.affine_lps, **kw)
