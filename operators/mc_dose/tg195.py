"""AAPM TG-195 case 4 (32 cm PMMA cylinder) and case 5 (voxel torso) set-ups for the engine."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from operators.common.paths import shared_data_dir

from . import physics as ph
from .engine import VoxelGeometry, binned_spectrum, fan_source, monoenergetic

SOURCE_DISTANCE_CM = 60.0
# TG-195 places the phantoms in air (composition and density in the reference file). The air is transported
# in full (scatter back into the phantom included, worth +0.2..0.5 % in organ energies against attenuation
# only), in a world box holding the phantom and the source with this margin (as DXMClib's TG-195 set-up);
# 10 vs 60 cm changes case 5 organ energies by < 0.15 % (correlated runs, same seed).
WORLD_MARGIN_CM = 60.0


def tg195_dir() -> Path:
    return shared_data_dir() / "tg195"


@lru_cache(maxsize=1)
def reference() -> dict:
    return json.loads((tg195_dir() / "tg195_reference_values.json").read_text())


def spectrum(name: str):
    """'120kVp' (W_120kVp_RQR9, 0.5 keV bins) or '56.4keV'."""
    if name == "56.4keV":
        return monoenergetic(56.4)
    s = json.loads((tg195_dir() / "tg195_spectra.json").read_text())["W_120kVp_RQR9"]
    return binned_spectrum(s["energy_bin_center_keV"], s["weight"])


def _comp(name: str) -> dict:
    comps = reference()["case5"]["material_composition_wt_pct"]
    for k, v in comps.items():
        if name in k.split("/"):
            return v
    raise KeyError(name)


def case4_geometry(rotation: bool, pixel_cm: float = 0.1, half_length_cm: float = 40.0):
    """PMMA cylinder r=16 cm along z, grid 33 x 33 cm in x-y, 1 cm slices.
    Case 4.1 bins: discs 1 cm thick at z=0,1,2,3 (bins 0..3). Case 4.2 bins: centre (0) and periphery (1)
    cylinders, 1 cm diameter, |z|<5 cm, periphery centred at x=-15 cm. Returns (geometry, volume
    correction per bin = true VOI volume / voxelised volume)."""
    half = 16.5
    n = int(round(2 * half / pixel_cm))
    c = -half + pixel_cm * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(c, c, indexing="xy")  # [y, x]
    r2 = xx**2 + yy**2
    inside = r2 <= 16.0**2
    if rotation:
        z_edges = np.arange(-half_length_cm, half_length_cm + 0.5, 1.0)
    else:
        z_edges = np.arange(-half_length_cm - 0.5, half_length_cm + 1.0, 1.0)
    zc = 0.5 * (z_edges[1:] + z_edges[:-1])
    nz = zc.size
    mat = np.broadcast_to(np.where(inside, 1, 0)[None], (nz, n, n)).astype(np.uint8)
    dens = np.where(mat == 1, ph.PMMA.density, ph.AIR.density).astype(np.float64)
    tmap = np.full((nz, n, n), -1, np.int32)
    corr = []
    if not rotation:
        for b, zv in enumerate((0.0, 1.0, 2.0, 3.0)):
            k = int(np.argmin(abs(zc - zv)))
            tmap[k][inside] = b
            corr.append(1.0)  # discs: whole cylinder cross-section (boundary voxelisation ~0.1 %)
        nb = 4
    else:
        zsel = np.abs(zc) < 5.0
        for b, cx in enumerate((0.0, -15.0)):
            m2 = (xx - cx) ** 2 + yy**2 <= 0.25
            for k in np.nonzero(zsel)[0]:
                tmap[k][m2] = b
            corr.append(math.pi * 0.25 / (m2.sum() * pixel_cm**2))
        nb = 2
    geom = VoxelGeometry(mat, dens, [ph.AIR, ph.PMMA], tmap, nb, origin=(z_edges[0], -half, -half),
                         spacing=(1.0, pixel_cm, pixel_cm), background=ph.AIR, world_margin_cm=WORLD_MARGIN_CM)
    return geom, np.array(corr)


def case4_source(spec: str, collimation_mm: int, rotation: bool):
    angles = np.arange(0, 360, 10) if rotation else [0.0]
    return fan_source(angles, SOURCE_DISTANCE_CM, 16.0 / SOURCE_DISTANCE_CM,
                      collimation_mm / 20.0 / SOURCE_DISTANCE_CM, spectrum(spec), start="-x")


CASE5_LABEL_MATERIAL = ["Air", "Cushion foam", "Carbon fiber", "Soft tissue", "Heart", "Lung", "Liver",
                        "Gallbladder", "Spleen", "Stomach", "Large intestine", "Pancreas", "Adrenal", "Thyroid",
                        "Thymus", "Small intestine", "Esophagus", "Skin", "Breast", "Cortical bone"]


@lru_cache(maxsize=1)
def case5_labels_zyx() -> np.ndarray:
    import nibabel as nib

    a = np.asarray(nib.load(str(tg195_dir() / "case5_labels_xyz_1mm.nii.gz")).dataobj).astype(np.uint8)
    return np.ascontiguousarray(a.transpose(2, 1, 0))


CASE5_ORGAN_BINS = slice(3, 20)  # tally bins of the 17 reference organs (labels 3..19, reference organ_order)


def case5_geometry():
    """Torso phantom centred at the origin; bins = label values 0..19 (organs: ``CASE5_ORGAN_BINS``)."""
    lab = case5_labels_zyx()
    idx = reference()["case5"]["material_index"]
    mats, dens = [], np.zeros(20)
    for i, name in enumerate(CASE5_LABEL_MATERIAL):
        nm, rho = idx[str(i)].rsplit(" ", 1)
        dens[i] = float(rho)
        mats.append(ph.Material(name, float(rho), {k: v for k, v in _comp(name).items()}))
    nz, ny, nx = lab.shape
    geom = VoxelGeometry(lab, dens[lab], mats, lab.astype(np.int32), 20,
                         origin=(-nz * 0.05, -ny * 0.05, -nx * 0.05), spacing=(0.1, 0.1, 0.1),
                         background=ph.AIR, world_margin_cm=WORLD_MARGIN_CM)
    return geom


def case5_source(spec: str, angle_deg: float):
    return fan_source([angle_deg], SOURCE_DISTANCE_CM, 25.0 / SOURCE_DISTANCE_CM, 0.5 / SOURCE_DISTANCE_CM,
                      spectrum(spec), start="-y")


def case5_reference(spec: str, angle_index: int) -> np.ndarray:
    key = {"120kVp": "120kVp_eV_per_history", "56.4keV": "56.4keV_eV_per_history"}[spec]
    return np.asarray(reference()["case5"][key][angle_index], float)
