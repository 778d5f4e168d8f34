"""Bundle backend: run any MONAI bundle whose TorchScript model outputs a multi-class label map (for example a
public whole-body CT model a site already has), with a label mapping {bundle label id: our organ name}.
Pure numpy / torch (no holoscan).

    b = LabelMapBundle.from_bundle("path/to/bundle", {1: "liver", 2: "spleen"},
                                   axes="ras", spacing_mm=(1.5, 1.5, 1.5), intensity=(-1024, 1024, 0, 1))
    seg = b.segment(ct_volume, scan_range=None)     # inference.OrganSegmentation (labels: ALL_ORGANS ids)

Settings come from the call (a site's config), else from ``configs/metadata.json`` (``corpusct`` block or the
MONAI ``network_data_format``), else the defaults:

* ``axes``: array layout the network expects for its spatial dimensions. ``"ras"`` (default: MONAI bundles load
  images with ``Orientationd(axcodes="RAS")``: axis 0 towards patient right, 1 anterior, 2 superior), ``"lps"``
  (axis 0 left, 1 posterior, 2 superior), or ``"canonical"`` (our (z, y, x): superior, posterior, left).
* ``spacing_mm``: voxel size the network expects, in the *network's* axis order; None = the CT's native grid.
  The CT is resampled linearly; the label map comes back by nearest neighbour onto the CT grid.
* ``intensity``: (a_min, a_max, b_min, b_max) as MONAI ``ScaleIntensityRanged`` with clipping; None = raw HU.
* ``roi_size``: sliding-window patch (network axis order); default ``network_data_format.inputs.image.
  spatial_shape`` when ``is_patch_data``, else the whole volume at once.

Output: (1, C, ...) with C > 1 -> argmax over channels; C = 1 -> the values are label ids (rounded). Bundle ids
absent from the mapping are dropped. Organs whose body parts (inference.ORGAN_BODY_PARTS) are outside the GrayNet
range are reported "not in field of view" and their voxels removed (the network runs once for all labels).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from operators.common.bundle import bundle_name_version, load_torchscript_bundle
from operators.common.errors import ModelError
from operators.common.labels import ORGAN_BY_NAME
from operators.common.volume import CTVolume

from . import preprocess as pp
from .inference import (
    MARGIN_MM,
    STATUS_NOT_FOUND,
    STATUS_NOT_IN_FOV,
    STATUS_SEGMENTED,
    OrganSegmentation,
    _canonical_slice_index,
    default_threads,
    organ_slices,
)

AXES = ("ras", "lps", "canonical")


def _canonical_to_net(arr_c: np.ndarray, axes: str) -> np.ndarray:
    """canonical (S, P, L index directions) -> the network's layout."""
    if axes == "canonical":
        return arr_c
    t = np.transpose(arr_c, (2, 1, 0))  # (L, P, S)
    return t if axes == "lps" else t[::-1, ::-1, :]


def _net_to_canonical(arr_n: np.ndarray, axes: str) -> np.ndarray:
    if axes == "canonical":
        return arr_n
    t = arr_n if axes == "lps" else arr_n[::-1, ::-1, :]
    return np.transpose(t, (2, 1, 0))


def _resize_nearest(arr: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resampling of a label array to ``shape`` (pixel centres aligned)."""
    idx = [np.clip(((np.arange(n) + 0.5) * arr.shape[a] / n).astype(int), 0, arr.shape[a] - 1)
           for a, n in enumerate(shape)]
    return arr[np.ix_(*idx)]


@dataclass
class LabelMapBundle:
    module: object
    metadata: dict
    path: Path
    label_mapping: dict[int, str]
    axes: str = "ras"
    spacing_mm: tuple[float, float, float] | None = None
    intensity: tuple[float, float, float, float] | None = None
    roi_size: tuple[int, int, int] | None = None

    @property
    def name_version(self) -> tuple[str, str]:
        return bundle_name_version(self.metadata, self.path.name)

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, label_mapping: dict, *, axes: str | None = None,
                    spacing_mm=None, intensity=None, roi_size=None) -> LabelMapBundle:
        bundle_dir = Path(bundle_dir)
        module, md = load_torchscript_bundle(bundle_dir, "label-map")
        module = module.float()
        cfg = md.get("corpusct", {}) if isinstance(md.get("corpusct"), dict) else {}
        mapping = {}
        for k, v in dict(label_mapping or {}).items():
            if str(v) not in ORGAN_BY_NAME:
                raise ModelError(f"Label mapping of {bundle_dir.name}: {v!r} is not an organ name "
                                 f"(known: {', '.join(ORGAN_BY_NAME)}).")
            mapping[int(k)] = str(v)
        if not mapping:
            raise ModelError(f"The label-map bundle {bundle_dir} needs a label mapping {{bundle id: organ name}}.")
        axes = str(axes or cfg.get("axes", "ras")).lower()
        if axes not in AXES:
            raise ModelError(f"axes must be one of {AXES}, not {axes!r}")
        spacing_mm = spacing_mm if spacing_mm is not None else cfg.get("spacing_mm")
        intensity = intensity if intensity is not None else cfg.get("intensity")
        if roi_size is None:
            img = md.get("network_data_format", {}).get("inputs", {}).get("image", {})
            if img.get("is_patch_data") and img.get("spatial_shape"):
                roi_size = img["spatial_shape"]
        return cls(module, md, bundle_dir, mapping, axes,
                   None if spacing_mm is None else tuple(float(s) for s in spacing_mm),
                   None if intensity is None else tuple(float(s) for s in intensity),
                   None if roi_size is None else tuple(int(s) for s in roi_size))

    def predict_ids(self, vol: CTVolume) -> np.ndarray:
        """Bundle label ids (uint8/uint16 as the network gives them) on the CT grid, CT array order."""
        hu_c, aff_c = pp.canonical(vol.hu, vol.affine_lps)
        x = _canonical_to_net(hu_c, self.axes)
        native_n = x.shape
        if self.spacing_mm is not None:
            sp_c = np.linalg.norm(aff_c[:3, :3], axis=0)[::-1]  # canonical (z, y, x) spacing
            sp_n = sp_c if self.axes == "canonical" else sp_c[::-1]  # ras / lps: (x, y, z)
            zoom = np.asarray(sp_n, float) / np.asarray(self.spacing_mm, float)
            x = ndimage.zoom(np.ascontiguousarray(x, np.float32), zoom, order=1, mode="nearest", prefilter=False)
        x = np.asarray(x, np.float32)
        if self.intensity is not None:
            a0, a1, b0, b1 = self.intensity
            x = (np.clip(x, a0, a1) - a0) / (a1 - a0) * (b1 - b0) + b0
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None]
        with torch.inference_mode():
            if self.roi_size is not None:
                from monai.inferers import sliding_window_inference

                y = sliding_window_inference(t, self.roi_size, 1, self.module, overlap=0.25, mode="gaussian",
                                             padding_mode="replicate")
            else:
                y = self.module(t)
        if isinstance(y, (tuple, list)):
            y = y[0]
        if y.ndim != 5 or tuple(y.shape[2:]) != tuple(x.shape):
            raise ModelError(f"The label-map bundle {self.path.name} returned shape {tuple(y.shape)} for an input "
                             f"of {tuple(t.shape)}; expected (1, C, {', '.join(map(str, x.shape))}).")
        ids = (torch.argmax(y[0], 0) if y.shape[1] > 1 else torch.round(y[0, 0])).to(torch.int32).numpy()
        if ids.shape != native_n:
            ids = _resize_nearest(ids, native_n)
        return np.ascontiguousarray(pp.from_canonical(_net_to_canonical(ids, self.axes), vol.affine_lps))

    def segment(self, vol: CTVolume, scan_range=None, *, margin_mm: float = MARGIN_MM,
                threads: int | None = None) -> OrganSegmentation:
        t0 = time.perf_counter()
        torch.set_num_threads(int(threads or default_threads()))
        ids = self.predict_ids(vol)
        lut = np.zeros(max(int(ids.max()), max(self.label_mapping)) + 1, np.uint8)
        for k, organ in self.label_mapping.items():
            lut[k] = ORGAN_BY_NAME[organ].id
        labels = lut[np.clip(ids, 0, len(lut) - 1)]
        status, slices = {}, {}
        by_slice = _canonical_slice_index(vol.affine_lps, vol.shape[0]) is not None
        for organ in dict.fromkeys(self.label_mapping.values()):
            oid = ORGAN_BY_NAME[organ].id
            ks = organ_slices(organ, scan_range, vol.slice_z_mm, margin_mm) if by_slice else np.arange(vol.shape[0])
            if not len(ks):
                labels[labels == oid] = 0
                status[organ] = STATUS_NOT_IN_FOV
                continue
            outside = np.ones(vol.shape[0], bool)
            outside[ks] = False
            sub = labels[outside]
            sub[sub == oid] = 0
            labels[outside] = sub
            slices[organ] = [int(ks.min()), int(ks.max())]
            status[organ] = STATUS_SEGMENTED if (labels == oid).any() else STATUS_NOT_FOUND
        total = round(time.perf_counter() - t0, 3)
        return OrganSegmentation(labels, status, slices, {"bundle": total, "total": total},
                                 dict([self.name_version]))
