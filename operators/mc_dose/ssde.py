"""Size-specific dose estimate baseline (AAPM reports 204 and 220)."""

from __future__ import annotations

import math

import numpy as np

# AAPM 204 exponential fits: f = a * exp(-b * D), D in cm
_FIT = {32: (3.704369, 0.03671937), 16: (1.874799, 0.03871313)}


def conversion_factor(diameter_cm: float, phantom_cm: int = 32) -> float:
    a, b = _FIT[int(phantom_cm)]
    return a * math.exp(-b * float(diameter_cm))


def water_equivalent_diameter(hu_slice: np.ndarray, pixel_area_cm2: float, threshold_hu: float = -500) -> float:
    """AAPM 220: Dw = 2 sqrt(A_w / pi), A_w = sum over the patient (HU > threshold) of (HU/1000 + 1) * pixel area."""
    hu = np.asarray(hu_slice, float)
    body = hu > threshold_hu
    aw = float(np.sum((hu[body] / 1000.0 + 1.0)) * pixel_area_cm2)
    return 2.0 * math.sqrt(max(aw, 0.0) / math.pi)


def ssde(ctdivol_mgy: float, diameter_cm: float, phantom_cm: int = 32) -> float:
    return float(ctdivol_mgy) * conversion_factor(diameter_cm, phantom_cm)
