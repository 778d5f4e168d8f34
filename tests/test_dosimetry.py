"""Water-equivalent diameter (AAPM TG-220) and SSDE (AAPM 204) against values from the reports."""

import numpy as np
import pytest

from operators.common.dosimetry import (
    ssde_conversion_factor,
    ssde_mgy,
    volume_ssde,
    water_equivalent_diameter_mm,
)
from operators.common.volume import CTMetadata, CTVolume, axial_affine


def test_aapm204_conversion_factors():
    # AAPM 204 table (32 cm phantom): f(20 cm) ~ 1.78, f(32 cm) ~ 1.14; 16 cm phantom at its own size ~ 1.0
    assert ssde_conversion_factor(20) == pytest.approx(1.78, abs=0.03)
    assert ssde_conversion_factor(32) == pytest.approx(1.14, abs=0.03)
    assert ssde_conversion_factor(16, 16) == pytest.approx(1.0, abs=0.03)
    assert ssde_mgy(10.0, 30.0) == pytest.approx(10.0 * ssde_conversion_factor(30.0))


def _grid():
    return np.mgrid[-256:256, -256:256] * 0.1  # 1 mm pixels, cm


def test_water_disc_has_its_geometric_diameter():
    yy, xx = _grid()
    disc = np.where(xx**2 + yy**2 <= 15.0**2, 0.0, -1000.0)
    assert water_equivalent_diameter_mm(disc, (5.0, 1.0, 1.0))[0] == pytest.approx(300.0, rel=0.01)


def test_lungs_count_towards_dw_as_tg220_requires():
    # a 30 cm water disc with two -850 HU "lungs": Aw includes the lungs at (HU/1000 + 1) = 0.15 of water
    yy, xx = _grid()
    chest = np.where(xx**2 + yy**2 <= 15.0**2, 0.0, -1000.0)
    lungs = ((xx - 6) ** 2 + yy**2 <= 4.0**2) | ((xx + 6) ** 2 + yy**2 <= 4.0**2)
    chest[lungs] = -850.0
    area_cm2 = np.pi * 15.0**2 - lungs.sum() * 0.01 * (1 - 0.15)
    expected_mm = 20.0 * np.sqrt(area_cm2 / np.pi)
    assert water_equivalent_diameter_mm(chest, (5.0, 1.0, 1.0))[0] == pytest.approx(expected_mm, rel=0.005)


def test_volume_ssde_uses_ctdivol_and_central_slice():
    yy, xx = np.mgrid[-32:32, -32:32] * 0.5  # 5 mm pixels, cm
    disc = np.where(xx**2 + yy**2 <= 10.0**2, 0.0, -1000.0).astype(np.float32)
    vol = CTVolume(np.repeat(disc[None], 5, axis=0), axial_affine((5.0, 5.0, 5.0), (-160, -160, 0.0)),
                   CTMetadata(ctdivol_mgy=12.0))
    out = volume_ssde(vol)
    assert out["water_equivalent_diameter_cm"] == pytest.approx(20.0, rel=0.03)
    assert out["ssde_mgy"] == pytest.approx(12.0 * ssde_conversion_factor(out["water_equivalent_diameter_cm"]),
                                            rel=1e-3)
    vol.meta.ctdivol_mgy = None
    assert volume_ssde(vol)["ssde_mgy"] is None
