"""CT dosimetry shared by the phantom (tube current modulation), the dose operators and reports:
water-equivalent diameter (AAPM TG-220) and the size-specific dose estimate (AAPM reports 204 and 220)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .volume import CTVolume

# AAPM 204 exponential fits of the conversion factor f(D) = a * exp(-b * D), D in cm, per CTDI phantom (cm)
_AAPM204_FIT = {32: (3.704369, 0.03671937), 16: (1.874799, 0.03871313)}


def water_equivalent_diameter_mm(hu: np.ndarray, spacing_zyx_mm: Sequence[float], threshold_hu: float = -500.0,
                                 body_mask: np.ndarray | None = None) -> np.ndarray:
    """Per-slice water-equivalent diameter Dw (mm), AAPM TG-220: Aw = sum over the patient of
    (HU/1000 + 1) * pixel area, Dw = 2 sqrt(Aw / pi). The patient is ``body_mask`` when given (e.g. the
    phantom's body, which excludes the table), else the pixels above ``threshold_hu``; each row is filled
    between its first and last patient pixel so that lungs and bowel gas count, as TG-220 requires.
    ``hu``: (z, y, x) or a single (y, x) slice (then a 1-element array is returned)."""
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim == 2:
        hu = hu[None]
        body_mask = None if body_mask is None else np.asarray(body_mask)[None]
    dy, dx = float(spacing_zyx_mm[1]), float(spacing_zyx_mm[2])
    body = np.asarray(body_mask, bool) if body_mask is not None else hu > threshold_hu
    any_row = body.any(axis=2)
    first = np.argmax(body, axis=2)
    last = body.shape[2] - 1 - np.argmax(body[:, :, ::-1], axis=2)
    cols = np.arange(body.shape[2])[None, None, :]
    filled = (cols >= first[..., None]) & (cols <= last[..., None]) & any_row[..., None]
    att = np.clip(hu / 1000.0 + 1.0, 0.0, None)
    aw = (att * filled).sum(axis=(1, 2)) * dx * dy
    return 2.0 * np.sqrt(aw / np.pi)


def ssde_conversion_factor(diameter_cm: float, phantom_cm: int = 32) -> float:
    """AAPM 204 conversion factor from CTDIvol (16 or 32 cm phantom) to size-specific dose."""
    a, b = _AAPM204_FIT[int(phantom_cm)]
    return a * math.exp(-b * float(diameter_cm))


def ssde_mgy(ctdivol_mgy: float, diameter_cm: float, phantom_cm: int = 32) -> float:
    return float(ctdivol_mgy) * ssde_conversion_factor(diameter_cm, phantom_cm)


def volume_ssde(vol: CTVolume, phantom_cm: int = 32) -> dict:
    """SSDE of a scan from its CTDIvol and the Dw of the slice at the centre of the scan range (AAPM 220)."""
    dw_cm = float(water_equivalent_diameter_mm(vol.hu[vol.shape[0] // 2], vol.spacing_mm)[0]) / 10.0
    ctdi = vol.meta.ctdivol_mgy
    return {"water_equivalent_diameter_cm": round(dw_cm, 2), "ctdivol_mgy": ctdi, "ctdi_phantom_cm": phantom_cm,
            "ssde_mgy": None if ctdi is None else round(ssde_mgy(ctdi, dw_cm, phantom_cm), 3)}
