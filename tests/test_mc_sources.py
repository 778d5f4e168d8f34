"""CT source construction: spekpy spectrum, bowtie, helical/axial trajectories with mA weighting, HU map."""

import numpy as np
import pytest

from operators.common.paths import shared_data_dir
from operators.mc_dose import physics as ph
from operators.mc_dose.engine import VoxelGeometry, run_cpu
from operators.mc_dose.sources import (
    ct_source,
    generic_bowtie,
    hu_to_density,
    hu_to_materials,
    spectrum_from_kvp,
)


def test_spekpy_spectrum_mean_energy():
    lo, w, f = spectrum_from_kvp(120, filtration_mm_al=6.0)
    mean = np.sum((lo + w / 2) * f)
    assert 55 < mean < 65 and lo[0] >= ph.ECUT_KEV and lo[-1] + w[-1] <= 120.01
    lo80, w80, f80 = spectrum_from_kvp(80, filtration_mm_al=6.0)
    assert np.sum((lo80 + w80 / 2) * f80) < mean


def test_bowtie_profile():
    t = generic_bowtie("body")
    assert t.argmin() == len(t) // 2 and t[0] == t[-1] and t.max() <= 3.0
    i = len(t) // 2 - len(t) // 10
    assert generic_bowtie("head")[i] > t[i] > t[len(t) // 2]  # head bowtie rises earlier


def test_helical_trajectory_and_tube_current_weights():
    spec = (np.array([60.0]), np.array([0.0]), np.array([1.0]))
    s = ct_source(spec, collimation_cm=4.0, pitch=1.0, z_start_cm=-10, z_end_cm=10, views_per_rotation=36,
                  ma_profile=(np.array([-10.0, 10.0]), np.array([100.0, 300.0])), bowtie=None)
    assert s.n_projections == 180  # 20 cm / 4 cm per rotation x 36
    assert np.allclose(np.linalg.norm(s.positions[:, :2], axis=1), 60.0)
    assert s.positions[0, 2] == -10 and np.all(np.diff(s.positions[:, 2]) > 0)
    assert s.positions[36, 2] == pytest.approx(-6.0)
    assert s.weights[0] == pytest.approx(100) and s.weights[-1] == pytest.approx(300, rel=0.02)
    ax = ct_source(spec, collimation_cm=4.0, pitch=0.0, z_start_cm=0, z_end_cm=8, views_per_rotation=10)
    assert ax.n_projections == 20 and set(np.round(ax.positions[:, 2], 6)) == {2.0, 6.0}


def test_tube_current_modulation_weights_projections():
    # mA 3x higher for z > 0: the result must equal the mA-weighted superposition of the two halves
    import dataclasses

    n = 20
    mat = np.zeros((n, 10, 10), np.int32)
    tm = (np.arange(n)[:, None, None] >= n // 2).astype(np.int32) * np.ones((1, 10, 10), np.int32)
    g = VoxelGeometry(mat, np.ones(mat.shape), [ph.WATER], tm, 2, origin=(-10, -10, -10), spacing=(1, 2, 2))
    spec = (np.array([60.0]), np.array([0.0]), np.array([1.0]))
    s = ct_source(spec, collimation_cm=1.0, pitch=1.0, z_start_cm=-9.5, z_end_cm=9.5, views_per_rotation=8,
                  ma_profile=(np.array([-10, -0.01, 0.01, 10.0]), np.array([100, 100, 300, 300.0])), bowtie="body")
    lo = s.positions[:, 2] < 0

    def part(sel):
        return dataclasses.replace(s, positions=s.positions[sel], u=s.u[sel], v=s.v[sel], w=s.w[sel],
                                   weights=None)

    r = run_cpu(g, s, 200_000, n_batches=16, seed=2, estimator="analog")  # a, b: the other estimator
    a = run_cpu(g, part(lo), 100_000, n_batches=16, seed=3)
    b = run_cpu(g, part(~lo), 100_000, n_batches=16, seed=4)
    wl, wh = 100 * lo.sum(), 300 * (~lo).sum()
    exp = (wl * a.mean_kev + wh * b.mean_kev) / (wl + wh)
    sd = np.sqrt(r.std_kev**2 + ((wl * a.std_kev) ** 2 + (wh * b.std_kev) ** 2) / (wl + wh) ** 2)
    assert np.all(np.abs(r.mean_kev - exp) < 3.5 * sd), (r.mean_kev, exp, sd)
    assert r.mean_kev[1] > 1.8 * r.mean_kev[0]  # and the modulation is visible
    assert r.conservation_error < 1e-9


@pytest.mark.skipif(not (shared_data_dir() / "icrp110").exists(), reason="ICRP-110 data absent")
def test_hu_mapping():
    media = ph.icrp110_media(shared_data_dir() / "icrp110" / "AF_media.dat")
    hu = np.array([-1000, -700, -100, 0, 50, 200, 1400])
    idx, rho, mats = hu_to_materials(hu, media)
    assert list(idx) == [0, 1, 2, 3, 4, 5, 6]
    assert rho[0] < 0.01 and rho[1] == pytest.approx(0.3) and rho[3] == pytest.approx(1.0)
    assert hu_to_density(1440) == pytest.approx(1.92, abs=0.03)
    assert mats[6].fractions()[20] > 0.15  # bone contains calcium
