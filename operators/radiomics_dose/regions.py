"""Body regions of the organ-dose models (papers/radiomics-fcn-organ-dose.txt): the organs each region's
network predicts, the bowtie and CTDI phantom of its scans, and the tube-current-modulation factors that
condition a prediction on the scan's mA profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operators.common.labels import organ_mask


@dataclass(frozen=True)
class Region:
    name: str
    organs: tuple[str, ...]
    bowtie: str  # head | body
    ctdi_phantom_cm: int  # 16 (head) | 32 (body): the phantom of the scanner's CTDIvol
    reference_dw_mm: float  # Dw at which the synthetic TCM gives the reference mA


REGIONS: dict[str, Region] = {
    "head": Region("head", ("brain", "eyes", "lenses", "optic_nerves", "pituitary_gland"), "head", 16, 170.0),
    "chest": Region("chest", ("lungs", "heart", "esophagus", "trachea", "spinal_cord"), "body", 32, 320.0),
    "abdomen": Region("abdomen", ("liver", "stomach", "small_intestine", "colon", "kidneys", "pancreas",
                                  "spinal_cord"), "body", 32, 320.0),
}

DOSE_ORGANS: tuple[str, ...] = tuple(dict.fromkeys(o for r in REGIONS.values() for o in r.organs))


def organ_slice_mass(label_map: np.ndarray, organs) -> np.ndarray:
    """(n_slices, n_organs) voxel count of each organ per slice (volume order)."""
    return np.stack([organ_mask(label_map, o).sum(axis=(1, 2)) for o in organs], axis=1).astype(float)


def organ_tcm_factors(slice_mass: np.ndarray, ma) -> np.ndarray:
    """Per organ: the organ-mass-weighted mean tube current over its slices divided by the scan's mean mA
    (1 without modulation; NaN for an organ absent from the scan)."""
    ma = np.asarray(ma, float)
    rel = ma / ma.mean()
    tot = slice_mass.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (slice_mass * rel[:, None]).sum(axis=0) / tot, np.nan)


def organ_geometry(slice_mass: np.ndarray, dw_mm, slice_z_mm) -> tuple[np.ndarray, np.ndarray]:
    """Per organ: (local water-equivalent diameter in cm, the organ-voxel-weighted mean Dw of its slices;
    margin in cm between the organ's z extent and the nearer end of the scan, 0 when the scan cuts it).
    NaN for an organ absent from the scan."""
    dw = np.asarray(dw_mm, float) / 10.0
    z = np.asarray(slice_z_mm, float)
    tot = slice_mass.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(tot > 0, (slice_mass * dw[:, None]).sum(axis=0) / tot, np.nan)
    margin = np.full(slice_mass.shape[1], np.nan)
    for o in range(slice_mass.shape[1]):
        k = np.nonzero(slice_mass[:, o] > 0)[0]
        if k.size:
            zo = z[k]
            margin[o] = max(min(zo.min() - z.min(), z.max() - zo.max()), 0.0) / 10.0
    return local, margin
