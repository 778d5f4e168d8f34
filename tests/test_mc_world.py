"""Transport in the medium around the voxel grid (the 'world' box filled with the background medium):
primary attenuation over the whole path and scatter from the air back into the grid; vacuum when absent."""

import numpy as np
import pytest

from operators.mc_dose import physics as ph
from operators.mc_dose.engine import Source, VoxelGeometry, monoenergetic, prepare, run_cpu


def _block(background, margin=50.0):
    """4 x 4 x 4 cm water cube at the origin (1 bin); a pencil beam along +z at x = 2.5 cm that misses it."""
    mat = np.zeros((4, 4, 4), np.int32)
    g = VoxelGeometry(mat, np.ones(mat.shape), [ph.WATER], np.zeros(mat.shape, np.int32), 1,
                      origin=(-2.0, -2.0, -2.0), spacing=(1.0, 1.0, 1.0), background=background,
                      world_margin_cm=margin)
    src = Source(np.array([[2.5, 0.0, -10.0]]), np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0, 0]]),
                 np.array([[0, 1.0, 0]]), 0.0, 0.0, *monoenergetic(40.0))
    return g, src


def test_world_box_holds_grid_and_focal_spots():
    g, src = _block(ph.AIR, margin=50.0)
    args, _ = prepare(g, src)
    world = args[15]
    assert np.allclose(world, [-52.0, -52.0, -60.0, 52.5, 52.0, 52.0])


def test_primary_attenuation_over_the_air_path():
    # the pencil crosses air only, from z = -10 cm to the world's end at z = 2 + 50 cm
    g, src = _block(ph.AIR, margin=50.0)
    r = run_cpu(g, src, 200_000, n_batches=16, seed=4, estimator="analog")
    mu = ph.mass_coefficients(ph.AIR, [40.0])["total"][0] * ph.AIR.density
    expect = np.exp(-mu * 62.0)
    t = r.extra["primary_escaped_kev"] / r.emitted_kev
    sd = r.extra["primary_escaped_std"] / r.emitted_kev
    assert abs(t - expect) < 3 * sd + 1e-5, (t, expect, sd)
    assert r.conservation_error < 1e-9
    assert r.unscored_kev > 0  # energy deposited in the air itself


def test_air_scatter_reaches_the_grid_and_vacuum_gives_nothing():
    g, src = _block(ph.AIR)
    air = run_cpu(g, src, 200_000, n_batches=16, seed=6)
    assert air.mean_kev[0] > 5 * air.std_kev[0] > 0  # only photons scattered in the air get there
    # bound: at most the energy of every photon that interacted in the air (62 cm path)
    mu = ph.mass_coefficients(ph.AIR, [40.0])["total"][0] * ph.AIR.density
    assert air.mean_kev[0] < 40.0 * (1 - np.exp(-mu * 62.0))
    g0, src0 = _block(None)
    vac = run_cpu(g0, src0, 50_000, n_batches=8, seed=6, estimator="analog")
    assert vac.mean_kev[0] == 0.0 and vac.unscored_kev == 0.0
    assert vac.escaped_kev == pytest.approx(40.0, rel=1e-12) and vac.conservation_error < 1e-12
