"""Model grid of the body-composition network, shared by training (models/body_composition/data.py) and
inference: reorient to canonical (slices inferior->superior, rows anterior->posterior, columns right->left),
resample to 4 mm pixels (antialiased bilinear) and 5 mm slices (Gaussian slice profile for thinner slices,
then linear), and back (logits up-sampled to the native grid, argmax, original orientation).

    grid = ModelGrid.of(vol.hu, vol.affine_lps)
    x = grid.to_model(vol.hu)                          # (Z', Y', X') HU float32 on the model grid
    y = grid.labels_to_model(labels)                   # nearest (training)
    native = grid.logits_to_native(logits)             # (C, Z', Y', X') -> uint8 (z, y, x) on the CT grid
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from operators.common.render import canonical_axes

PIXEL_MM = 4.0
SLICE_MM = 5.0
AIR_HU = -1000.0


@dataclass
class ModelGrid:
    native_shape: tuple[int, int, int]
    src_axis: list[int]
    flips: list[bool]
    can_shape: tuple[int, int, int]
    can_spacing: tuple[float, float, float]  # (z, y, x) mm
    model_shape: tuple[int, int, int]

    @classmethod
    def of(cls, hu_shape, affine_lps, pixel_mm: float = PIXEL_MM, slice_mm: float = SLICE_MM) -> ModelGrid:
        src, flips = canonical_axes(affine_lps)
        a = np.asarray(affine_lps, float)
        sp_native = [float(np.linalg.norm(a[:3, c])) for c in (2, 1, 0)]  # (z, y, x) array axes
        can_shape = tuple(int(hu_shape[s]) for s in src)
        can_sp = tuple(sp_native[s] for s in src)
        model_shape = (max(1, int(round(can_shape[0] * can_sp[0] / slice_mm))),
                       max(1, int(round(can_shape[1] * can_sp[1] / pixel_mm))),
                       max(1, int(round(can_shape[2] * can_sp[2] / pixel_mm))))
        return cls(tuple(int(s) for s in hu_shape), src, flips, can_shape, can_sp, model_shape)

    @property
    def model_spacing(self) -> tuple[float, float, float]:
        return tuple(self.can_shape[i] * self.can_spacing[i] / self.model_shape[i] for i in range(3))

    def canonical(self, arr: np.ndarray) -> np.ndarray:
        out = np.transpose(arr, self.src_axis)
        for ax, f in enumerate(self.flips):
            if f:
                out = np.flip(out, axis=ax)
        return out

    def native(self, can: np.ndarray) -> np.ndarray:
        out = can
        for ax, f in enumerate(self.flips):
            if f:
                out = np.flip(out, axis=ax)
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.src_axis)))

    def to_model(self, hu: np.ndarray) -> np.ndarray:
        can = np.ascontiguousarray(self.canonical(np.asarray(hu, np.float32)))
        mz, my, mx = self.model_shape
        t = torch.from_numpy(can)[:, None]  # (Z, 1, Y, X)
        t = F.interpolate(t, size=(my, mx), mode="bilinear", align_corners=False, antialias=True)[:, 0]
        t = t.numpy()
        ratio = self.can_shape[0] / mz
        if ratio > 1.2:  # thinner slices: slice profile of the model's slice thickness
            t = ndimage.gaussian_filter1d(t, sigma=0.42 * ratio, axis=0, mode="nearest")
        if mz != self.can_shape[0]:
            tt = torch.from_numpy(np.ascontiguousarray(t))[None, None]
            t = F.interpolate(tt, size=(mz, my, mx), mode="trilinear", align_corners=False)[0, 0].numpy()
        return np.ascontiguousarray(t, dtype=np.float32)

    def labels_to_model(self, labels: np.ndarray) -> np.ndarray:
        can = np.ascontiguousarray(self.canonical(np.asarray(labels, np.uint8)))
        t = torch.from_numpy(can.astype(np.float32))[None, None]
        t = F.interpolate(t, size=self.model_shape, mode="nearest-exact")
        return t[0, 0].numpy().astype(np.uint8)

    def logits_to_native(self, logits: np.ndarray | torch.Tensor, chunk: int = 16) -> np.ndarray:
        """(C, Z', Y', X') model-grid logits -> uint8 labels on the native grid (trilinear, argmax)."""
        lg = torch.as_tensor(logits, dtype=torch.float32)
        cz, cy, cx = self.can_shape
        lz = F.interpolate(lg[None], size=(cz, lg.shape[2], lg.shape[3]), mode="trilinear", align_corners=False)[0]
        out = np.empty((cz, cy, cx), np.uint8)
        for k in range(0, cz, chunk):
            sl = lz[:, k:k + chunk].permute(1, 0, 2, 3)  # (z, C, y, x)
            up = F.interpolate(sl, size=(cy, cx), mode="bilinear", align_corners=False)
            out[k:k + chunk] = up.argmax(1).to(torch.uint8).numpy()
        return self.native(out)


def pad_for_model(arr: np.ndarray, min_z: int = 8, min_xy: int = 128) -> tuple[np.ndarray, tuple]:
    """Pad (Z, Y, X) HU to at least (min_z, min_xy, min_xy): edge-replicated in z, air in plane (centred).
    Returns the padded array and the slices that cut the original back out."""
    nz, ny, nx = arr.shape
    pz, py, px = max(0, min_z - nz), max(0, min_xy - ny), max(0, min_xy - nx)
    if pz:
        arr = np.pad(arr, ((pz // 2, pz - pz // 2), (0, 0), (0, 0)), mode="edge")
    if py or px:
        arr = np.pad(arr, ((0, 0), (py // 2, py - py // 2), (px // 2, px - px // 2)), constant_values=AIR_HU)
    return arr, (slice(pz // 2, pz // 2 + nz), slice(py // 2, py // 2 + ny), slice(px // 2, px // 2 + nx))
