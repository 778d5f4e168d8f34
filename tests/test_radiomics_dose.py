"""Radiomics organ dose: features (pyradiomics), the Monte Carlo segment decomposition, f-regression, the
network, the operator's dose scaling and its SR groups. Expected values are geometry (sphere volume and
diameter), closed forms (scipy's regression t statistic, the solid angle of a rectangle, a known linear
law) or a second, independent Monte Carlo run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.organ_dose.dataset import RegionData
from models.organ_dose.train import export, f_regression, fit_region, predict
from operators.common.dose_parameters import DoseParameters
from operators.common.labels import ORGAN_BY_NAME
from operators.radiomics_dose import features as F
from operators.radiomics_dose.mc_segments import (
    rect_solid_angle,
    scan_dose_per_ctdivol,
    segment_doses,
    segment_weights_from_ma,
)
from operators.radiomics_dose.regions import (
    REGIONS,
    organ_helix_angle,
    organ_position,
    organ_slice_mass,
    organ_slice_positions,
    organ_tcm_factors,
)


def _sphere(r_mm=40.0, sp=(5.0, 1.5, 1.5), shape=(30, 80, 80), seed=0):
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    c = np.array(shape) * np.array(sp) / 2
    m = ((z * sp[0] - c[0]) ** 2 + (y * sp[1] - c[1]) ** 2 + (x * sp[2] - c[2]) ** 2) <= r_mm**2
    hu = np.where(m, 40.0, -1000.0) + np.random.default_rng(seed).normal(0, 10, m.shape)
    return hu.astype(np.float32), m, sp


def test_sphere_features_volume_diameter_sphericity():
    hu, m, sp = _sphere()
    f = F.organ_features(hu, sp, m, "liver")
    assert f.status == "ok" and len(f.values) == 107
    r = 40.0
    assert f.values["original_shape_MeshVolume"] == pytest.approx(4 / 3 * math.pi * r**3, rel=0.03)
    assert f.values["original_shape_Maximum3DDiameter"] == pytest.approx(2 * r, rel=0.1)
    assert 0.8 < f.values["original_shape_Sphericity"] <= 1.0
    assert f.values["original_firstorder_Median"] == pytest.approx(40.0, abs=8.0)
    assert f.seconds < 10.0


def test_empty_and_tiny_masks_give_a_status_not_a_crash():
    hu, m, sp = _sphere()
    e = F.organ_features(hu, sp, np.zeros_like(m), "lenses")
    assert e.status == "empty" and all(math.isnan(v) for v in e.values.values())
    tiny = np.zeros_like(m)
    tiny[15, 40, 40:43] = True
    assert F.organ_features(hu, sp, tiny, "lenses").status == "too_small"
    assert len(F.feature_names()) == 107


def test_wanted_features_equal_the_full_extraction_and_skip_the_rest():
    hu, m, sp = _sphere(r_mm=25.0, shape=(20, 50, 50))
    full = F.organ_features(hu, sp, m, "liver")
    wanted = {"original_glszm_ZoneEntropy", "original_shape_Sphericity", "original_firstorder_Median"}
    part = F.organ_features(hu, sp, m, "liver", wanted)
    assert part.status == "ok"
    for k in wanted:
        assert part.values[k] == pytest.approx(full.values[k], rel=1e-9)
    computed = {k for k, v in part.values.items() if not math.isnan(v)}
    assert computed == wanted  # e.g. no GLCM, GLRLM, GLDM or NGTDM feature was computed
    assert F.organ_features(hu, sp, m, "liver", set()).status == "ok"  # an ROI the network reads no feature of
    # shape features without the surface mesh (principal axes, voxel volume: the mesh is skipped) equal
    # pyradiomics' own on an irregular ROI
    blob = m & (np.random.default_rng(3).random(m.shape) < 0.9)
    blob[:, :, :22] = False
    mesh_free = {f"original_shape_{k}" for k in F.MESH_FREE_SHAPE}
    own, ref = F.organ_features(hu, sp, blob, "liver", mesh_free), F.organ_features(hu, sp, blob, "liver")
    assert own.status == "ok" and np.isnan(own.values["original_shape_MeshVolume"])
    for k in mesh_free:
        assert own.values[k] == pytest.approx(ref.values[k], rel=1e-12), k
    # the job split into its extractor runs (shape / the rest; run in different processes) gives the same values
    for w in (None, wanted):
        job = F.RoiJob.of(hu, sp, m, "liver", w)
        parts = job.parts()
        assert len(parts) == 2 and {c.split("_")[1] for c in parts[0].wanted} == {"shape"}
        merged, whole = F.merge([p.run() for p in parts]), job.run()
        assert merged.status == whole.status == "ok"
        keys = sorted(whole.values)
        assert sorted(merged.values) == keys
        assert np.array_equal([merged.values[k] for k in keys], [whole.values[k] for k in keys], equal_nan=True)


def test_f_regression_matches_the_regression_t_statistic():
    from scipy import stats

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    y = 2.0 * x[:, 0] + 0.3 * x[:, 1] + rng.normal(size=60)
    F_ = f_regression(x, y)
    for j in range(3):
        lr = stats.linregress(x[:, j], y)
        assert F_[j] == pytest.approx((lr.slope / lr.stderr) ** 2, rel=1e-6)
    assert F_[0] > F_[1] > 0


def test_solid_angle_of_a_rectangle_by_quadrature():
    a, b = 0.4, 0.05
    u, v = np.meshgrid(np.linspace(-a, a, 801), np.linspace(-b, b, 201), indexing="ij")
    num = np.trapezoid(np.trapezoid((1 + u**2 + v**2) ** -1.5, v[0], axis=1), u[:, 0])
    assert rect_solid_angle(a, b) == pytest.approx(num, rel=1e-5)


def test_segment_weights_and_linear_combination():
    z = np.arange(0.0, 100.0, 5.0)  # 20 slices
    ma = np.where(z < 40, 100.0, 300.0)
    w = segment_weights_from_ma([0, 40], [40, 95], z, ma)
    assert w == pytest.approx([100 / ma.mean(), 300 / ma.mean()])
    assert organ_tcm_factors(np.ones((20, 2)), np.full(20, 150.0)) == pytest.approx([1.0, 1.0])

    class S:  # two segments, two organs
        dose = np.array([[1.0, 2.0], [3.0, 4.0]])
        sigma = np.array([[0.1, 0.1], [0.2, 0.2]])
        length_frac = np.array([1.0, 0.5])
    d, s = scan_dose_per_ctdivol(S, 2.0, weights=[1.0, 2.0])
    assert d == pytest.approx([(1 * 1 + 3 * 1) / 2, (2 + 4) / 2])
    d1, _ = scan_dose_per_ctdivol(S, 2.0, slice(0, 1))
    d2, _ = scan_dose_per_ctdivol(S, 2.0, slice(1, 2))
    assert d1 + d2 == pytest.approx(scan_dose_per_ctdivol(S, 2.0)[0])


def _water_cylinder():
    """20 slices of 5 mm, 64 x 64 pixels of 5 mm: a 24 cm water cylinder with a 'liver' and a 'kidneys'
    insert (ALL_ORGANS ids), couch-free."""
    nz, n, px = 20, 64, 5.0
    yy, xx = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2
    r = np.hypot(yy - c, xx - c) * px
    hu = np.where(r <= 120.0, 0.0, -1000.0).astype(np.float32)[None].repeat(nz, 0)
    lab = np.zeros(hu.shape, np.uint8)
    lab[4:16][:, (np.hypot(yy - c, xx - c - 8) * px <= 40.0)] = ORGAN_BY_NAME["liver"].id
    lab[8:12][:, (np.hypot(yy - c + 14, xx - c) * px <= 20.0)] = ORGAN_BY_NAME["kidneys"].id
    aff = np.diag([px, px, -5.0, 1.0])
    aff[:3, 3] = (-c * px, -c * px, 50.0)
    return hu, aff, lab


def test_segment_organ_doses_are_exact_at_the_transport_grid_whatever_the_block():
    """An organ's segment dose is the energy in its own voxels over their mass: the same histories give the same
    lens and eye doses with 2 x 4 x 4 blocks as with single voxels. (Block-mean scoring, before bundle 0.4.0,
    gave a lens at the surface the dose of the deeper tissue sharing its block.) Eyes contain the lenses."""
    hu, aff, _ = _water_cylinder()
    lab = np.zeros(hu.shape, np.uint8)
    lab[9:11, 9:13, 26:38] = ORGAN_BY_NAME["eyes"].id  # under the anterior surface of the cylinder (row 8)
    lab[9:10, 9:10, 30:32] = ORGAN_BY_NAME["lenses"].id  # one slice, one row, two columns, in front
    kw = dict(bowtie="head", n_per_segment=20_000, n_batches=10, seed=4)
    coarse = segment_doses(hu, aff, lab, ["lenses", "eyes"], 120.0, block=(2, 4, 4), **kw)
    fine = segment_doses(hu, aff, lab, ["lenses", "eyes"], 120.0, block=(1, 1, 1), **kw)
    assert np.all(np.isfinite(coarse.dose)) and np.all(coarse.dose.sum(axis=0) > 0)
    assert np.allclose(coarse.dose, fine.dose, rtol=1e-9, atol=0)
    assert np.allclose(coarse.sigma, fine.sigma, rtol=1e-9, atol=0)
    # the masses are those of the masks (water, 5 mm voxels: 0.125 g each)
    assert coarse.info["organ_mass_g"] == pytest.approx([2 * 0.125, 2 * 4 * 12 * 0.125], rel=1e-3)


def _gland_in_bone(organ: str):
    """The water cylinder with ``organ`` in 2 x 2 x 2 voxels (1 mL) that read as bone (1400 HU: partial volume with
    the sella on 5 mm slices), inside one (2, 4, 4) block of the transport grid, and brain in the block's soft
    voxels."""
    hu, aff, _ = _water_cylinder()
    lab = np.zeros(hu.shape, np.uint8)
    hu[8:10, 24:26, 24:26] = 1400.0
    lab[8:10, 24:26, 24:26] = ORGAN_BY_NAME[organ].id
    lab[8:10, 24:28, 24:28][hu[8:10, 24:28, 24:28] < 100] = ORGAN_BY_NAME["brain"].id
    return hu, aff, lab


GLAND_RUN = dict(bowtie="head", n_per_segment=20_000, n_batches=10, block=(2, 4, 4))


def test_a_soft_organ_without_soft_voxels_takes_the_soft_tissue_of_its_block():
    """A soft organ all of whose voxels read as bone is scored in the soft tissue of its block, not in bone: its
    dose equals that of an organ made of the block's soft voxels (same histories, same bin)."""
    hu, aff, lab = _gland_in_bone("optic_nerves")
    r = segment_doses(hu, aff, lab, ["optic_nerves", "brain"], 120.0, **GLAND_RUN)
    assert np.all(np.isfinite(r.dose)) and np.all(r.dose[:, 1] > 0)
    assert np.allclose(r.dose[:, 0], r.dose[:, 1], rtol=1e-12, atol=0)


def test_the_pituitary_is_scored_as_its_tissues_kerma_in_all_its_voxels():
    """A pituitary gland whose voxels all read as bone is scored as the kerma of its own tissue in every one of
    them (dose.SOFT_KERMA_ORGANS), not in the block around it: its mass is the whole gland's (1 mL at 1.03 g/cm3),
    and on the same histories its dose is the soft-tissue share of the kerma the same voxels score as bone
    (mu_en/rho of soft tissue over bone's: 0.25 at 60 keV, 0.44 at 80 keV, NIST). The brain beside it is unchanged."""
    hu, aff, lab = _gland_in_bone("pituitary_gland")
    r = segment_doses(hu, aff, lab, ["pituitary_gland", "brain"], 120.0, **GLAND_RUN)
    as_bone = np.where(lab == ORGAN_BY_NAME["pituitary_gland"].id, ORGAN_BY_NAME["bones"].id, lab).astype(np.uint8)
    b = segment_doses(hu, aff, as_bone, ["bones", "brain"], 120.0, **GLAND_RUN)
    assert r.info["organ_mass_g"][0] == pytest.approx(8 * 0.125 * 1.03, rel=1e-9)
    ratio = r.dose[:, 0] / b.dose[:, 0]
    assert np.all((ratio > 0.15) & (ratio < 0.6)), ratio  # measured 0.23-0.26 per segment
    assert np.allclose(r.dose[:, 1], b.dose[:, 1], rtol=1e-12, atol=0)


@pytest.mark.slow
def test_narrowed_fan_and_segments_reproduce_a_full_fan_run():
    """Organ doses per nominal photon with the fan narrowed to the patient equal those of the full 50 degree
    fan (independent runs: agreement within 4 sigma)."""
    hu, aff, lab = _water_cylinder()
    kw = dict(bowtie="body", n_per_segment=60_000, n_batches=10)
    a = segment_doses(hu, aff, lab, ["liver", "kidneys"], 120.0, restrict_fan=True, seed=3, **kw)
    b = segment_doses(hu, aff, lab, ["liver", "kidneys"], 120.0, restrict_fan=False, seed=99, **kw)
    assert a.info["solid_angle_factor"] < 0.9 and b.info["solid_angle_factor"] == 1.0
    da, sa = a.dose.sum(0), np.sqrt((a.sigma**2).sum(0))
    db, sb = b.dose.sum(0), np.sqrt((b.sigma**2).sum(0))
    assert np.all(np.abs(da - db) < 4 * np.hypot(sa, sb)), (da, db, sa, sb)
    assert len(a.z0_mm) == 3 and a.length_frac[-1] < 1.0  # 95 mm of slice centres in 40 mm segments


def _synthetic_region(n_pat=40, per=4, seed=0, tcm_exponent=1.0, helix_amplitude=0.0):
    """A known law: log(dose/CTDIvol/tcm^e) = 0.25 z_a - 0.15 z_b + c_o + 0.1 (kVp-110)/30, z ~ N(0, 1), other
    features noise; two organs of the abdomen region with real feature names. e < 1: the dose follows the organ's
    TCM factor only in part (scatter from slices at other mA)."""
    rng = np.random.default_rng(seed)
    names = [f"{r}:{f}" for r in ("liver", "kidneys") for f in F.feature_names()[:60]]
    n = n_pat * per
    X = rng.normal(size=(n, len(names)))
    kvp = rng.choice([80.0, 100.0, 120.0, 140.0], n)
    tcm = rng.uniform(0.8, 1.2, (n, 2))
    c = np.array([0.1, -0.2])
    logy = 0.25 * X[:, [3]] - 0.15 * X[:, [70]] + c + 0.1 * ((kvp - 110) / 30)[:, None]
    angle = rng.uniform(0.0, 2.0 * np.pi, (n, 2))  # the tube angle as the beam passes each organ
    y = np.exp(logy) * tcm**tcm_exponent * (1.0 + helix_amplitude * np.cos(angle))
    return RegionData("abdomen", ["liver", "kidneys"], names, X, kvp, tcm, np.full(n, 28.0),
                      organ_dw_cm=np.full((n, 2), 28.0), organ_margin_cm=np.full((n, 2), 2.0),
                      organ_ap_cm=np.full((n, 2), -1.0), organ_radius_cm=np.full((n, 2), 6.0),
                      helix_cos=np.cos(angle), helix_sin=np.sin(angle), y=y,
                      sigma=np.zeros_like(y), ssde_ratio=np.ones(n), patient=np.repeat(np.arange(n_pat), per),
                      tcm_strength=np.zeros(n))


def test_organ_positions_follow_the_affine_not_the_array_order():
    """The eyes 70 mm anterior of the image centre and 30 mm either side: AP offset -7 cm (LPS y, anterior < 0),
    mean distance sqrt(7^2 + 3^2) cm, whether the rows run anterior->posterior or the other way."""
    lab = np.zeros((3, 101, 121), np.uint8)
    eye = ORGAN_BY_NAME["eyes"].id
    lab[:, 50 - 35, [60 - 15, 60 + 15]] = eye  # rows/columns of 2 mm: 35 rows = 70 mm, 15 columns = 30 mm
    aff = np.diag([2.0, 2.0, 5.0, 1.0])
    flipped = aff.copy()
    flipped[1, 1] = -2.0  # rows posterior -> anterior: the same eyes sit 35 rows *below* the centre row
    for lm, a in ((lab, aff), (lab[:, ::-1], flipped)):
        ap, r = organ_position(organ_slice_mass(lm, ["eyes", "brain"]),
                               organ_slice_positions(lm, ["eyes", "brain"], a))
        assert ap[0] == pytest.approx(-7.0) and r[0] == pytest.approx(math.hypot(7.0, 3.0))
        assert np.isnan(ap[1]) and np.isnan(r[1])


@pytest.mark.parametrize("offset", [(0.0, 0.0), (12.0, -6.0), (-80.0, 0.0)])
def test_head_field_of_view_centred_with_a_set_miscentring(offset):
    """The cohort's head scans: the image centre (the isocentre) at the patient's centroid + offset; every voxel
    keeps its LPS position and label (no organ voxel lost, the grid grows when the patient would leave it)."""
    from models.organ_dose.cohort import centre_field_of_view

    hu = np.full((4, 90, 100), -1000.0, np.float32)
    yy, xx = np.mgrid[:90, :100]
    head = ((yy - 30) / 22.0) ** 2 + ((xx - 62) / 18.0) ** 2 < 1  # off-centre, near the anterior edge
    hu[:, head] = 30.0
    lab = np.zeros(hu.shape, np.uint8)
    lab[:, (yy - 14) ** 2 + (xx - 62) ** 2 < 16] = ORGAN_BY_NAME["eyes"].id
    aff = np.array([[1.5, 0, 0, -70.0], [0, 2.0, 0, -90.0], [0, 0, -5.0, 20.0], [0, 0, 0, 1.0]])
    hu2, aff2, lab2 = centre_field_of_view(hu, aff, lab, offset)
    assert (organ_slice_mass(lab2, ["eyes"]) == organ_slice_mass(lab, ["eyes"])).all()
    assert (hu2 > -500).sum() == head.sum() * 4

    def lps(a, mask):
        k, j, i = np.nonzero(mask)
        return (a @ np.stack([i, j, k, np.ones_like(i)]))[:3].T

    assert np.allclose(np.sort(lps(aff2, lab2 > 0), 0), np.sort(lps(aff, lab > 0), 0))  # nothing moved in LPS
    centre = aff2 @ [(hu2.shape[2] - 1) / 2, (hu2.shape[1] - 1) / 2, 0, 1]
    centroid = lps(aff2, hu2 > -500).mean(0)
    assert centre[1] - centroid[1] == pytest.approx(offset[0], abs=1.0)  # AP, within half a 2 mm row
    assert centre[0] - centroid[0] == pytest.approx(offset[1], abs=0.75)


COHORT = Path(__file__).resolve().parents[1] / "models" / "organ_dose" / "data" / "cohort"


def test_committed_cohort_is_scored_by_the_current_rule():
    """Every committed training case carries the organ-scoring rule segment_doses applies now (a change of the
    rule without --refresh-mc would train the networks on doses the code no longer computes)."""
    from models.organ_dose.cohort import ORGAN_SCORING

    cases = sorted(COHORT.glob("case_*.npz"))
    assert len(cases) == 433  # 90 patients x 3 regions, plus 163 head-only patients (81 in 0.5.1, 82 in 0.6.0)
    rules = {json.loads(str(np.load(c)["info"]))["organ_scoring"] for c in cases}
    assert rules == {ORGAN_SCORING}


def test_cohort_case_reproduces_from_its_seed(tmp_path):
    """A committed case's Monte Carlo doses come back to the last bit when the patient is synthesised again from
    its seed (what --refresh-mc does); a case whose re-synthesised labels differ is left alone, not overwritten."""
    from models.organ_dose.cohort import refresh_monte_carlo

    src = COHORT / "case_001_chest.npz"  # procedural patient: quick to synthesise; 2e5 histories per segment
    with np.load(src) as d:
        data = {k: d[k] for k in d.files}
    info = json.loads(str(data["info"]))
    del info["organ_scoring"]
    data["info"] = json.dumps(info)
    np.savez(tmp_path / src.name, **data)
    assert refresh_monte_carlo(tmp_path, n_head=2_500_000, n_trunk=200_000) == 1
    with np.load(tmp_path / src.name) as new, np.load(src) as ref:
        assert np.array_equal(new["seg_dose"], ref["seg_dose"], equal_nan=True)
        assert np.array_equal(new["seg_sigma"], ref["seg_sigma"], equal_nan=True)
        assert np.array_equal(new["features"], ref["features"], equal_nan=True)

    data["organ_slice_voxels"] = data["organ_slice_voxels"] + 1  # not this patient's labels any more
    np.savez(tmp_path / src.name, **data)
    before = (tmp_path / src.name).read_bytes()
    assert refresh_monte_carlo(tmp_path, n_head=2_500_000, n_trunk=200_000) == 0
    assert (tmp_path / src.name).read_bytes() == before


def test_refresh_re_tags_only_the_cases_a_rule_change_leaves_alone(tmp_path, monkeypatch):
    """--refresh-mc after the pituitary rule (bundle 0.8.0): a case without a pituitary scored by the previous rule
    gets the current rule's name and keeps its doses without a Monte Carlo run; a head case with a pituitary is
    re-run."""
    from models.organ_dose import cohort

    for name in ("case_001_chest.npz", "case_000_head.npz"):
        with np.load(COHORT / name) as d:
            data = {k: d[k] for k in d.files}
        data["info"] = json.dumps({**json.loads(str(data["info"])), "organ_scoring": "voxel-expected-kerma"})
        (tmp_path / name[9:-4]).mkdir()
        np.savez(tmp_path / name[9:-4] / name, **data)

    def no_monte_carlo(*a, **k):
        raise RuntimeError("Monte Carlo re-run")

    monkeypatch.setattr(cohort, "make_case", no_monte_carlo)
    assert cohort.refresh_monte_carlo(tmp_path / "chest", n_head=2_500_000, n_trunk=200_000) == 0
    with np.load(tmp_path / "chest" / "case_001_chest.npz") as new, np.load(COHORT / "case_001_chest.npz") as ref:
        assert json.loads(str(new["info"]))["organ_scoring"] == cohort.ORGAN_SCORING
        assert np.array_equal(new["seg_dose"], ref["seg_dose"], equal_nan=True)
    with pytest.raises(RuntimeError, match="re-run"):
        cohort.refresh_monte_carlo(tmp_path / "head", n_head=2_500_000, n_trunk=200_000)


def test_network_recovers_a_known_relation():
    d = _synthetic_region(tcm_exponent=0.7)
    tr = np.nonzero(d.patient < 32)[0]
    te = np.nonzero(d.patient >= 32)[0]
    fitted = fit_region(d, tr, seed=0, epochs=200, n_select=10)
    assert d.feature_names[3] in fitted.selected[:2] and d.feature_names[70] in fitted.selected[:2]
    p = predict(fitted, d, te)
    mape = np.mean(np.abs(p - d.y[te]) / d.y[te])
    base = np.mean(np.abs(np.exp(np.log(d.y[tr]).mean(0)) - d.y[te]) / d.y[te])
    assert mape < 0.03 and mape < 0.2 * base, (mape, base)
    # the TCM factor is an input as well as the target's divisor, so the network learns that these organs follow
    # their slices' mA only as tcm^0.7: 1.2 x the mA gives 1.2^0.7 = 1.136 x the dose, not 1.2 x
    at = {}
    for f in (1.0, 1.2):
        d.tcm_factor[te] = f
        at[f] = predict(fitted, d, te)
    assert np.median(at[1.2] / at[1.0]) == pytest.approx(1.2**0.7, abs=0.015)


def test_helix_angle_is_learnt_and_averaged_out_when_unknown(monkeypatch):
    """A law with dose x (1 + 0.15 cos angle): given the angle the network follows it; without it (the operator's
    case: a series does not record the start angle) the mean over angles is the angle-free dose (the mean of
    1 + 0.15 cos over a turn is 1), and the given-angle prediction is clearly better than the averaged one."""
    import dataclasses

    from models.organ_dose.train import predict_unknown_angle
    from operators.radiomics_dose import regions as R

    reg = dataclasses.replace(R.REGIONS["abdomen"], organ_inputs=R.REGIONS["abdomen"].organ_inputs + R.HELIX_INPUTS)
    monkeypatch.setitem(R.REGIONS, "abdomen", reg)
    d = _synthetic_region(n_pat=60, helix_amplitude=0.15)
    tr, te = np.nonzero(d.patient < 48)[0], np.nonzero(d.patient >= 48)[0]
    fitted = fit_region(d, tr, seed=0, epochs=200, n_select=10)
    y_free = d.y[te] / (1.0 + 0.15 * d.helix_cos[te])
    known = np.mean(np.abs(predict(fitted, d, te) - d.y[te]) / d.y[te])
    averaged = predict_unknown_angle(fitted, d, te, 8)
    assert known < 0.03 and known < 0.5 * np.mean(np.abs(averaged - d.y[te]) / d.y[te]), known
    assert np.mean(np.abs(averaged - y_free) / y_free) < 0.03


def test_helix_angle_of_an_organ_from_its_mean_z():
    """Angle 0 at the helix start, 2 pi per feed: an organ centred a quarter feed past the start is at pi / 2 (and
    an organ absent from the slices has none)."""
    z = np.array([100.0, 105.0, 110.0, 115.0])
    mass = np.array([[0, 0], [3, 0], [3, 0], [0, 0]], float)  # organ 0 centred at z = 107.5; organ 1 absent
    a = organ_helix_angle(mass, z, start_z_mm=97.5, feed_mm=40.0)
    assert a[0] == pytest.approx(np.pi / 2) and np.isnan(a[1])


def test_head_doses_are_averaged_over_the_unknown_start_angle():
    """The committed head network reads the tube angle at each organ; a series does not record it, so the operator
    reports the mean over the angles and adds their spread to the uncertainty. The spread is physics the network
    learnt from the Monte Carlo: large for the superficial eyes, small for the deep brain."""
    from models.phantoms import PhantomParams, generate_phantom
    from operators.common.paths import REPO_ROOT
    from operators.radiomics_dose.inference import OrganDoseModel, predict_organ_doses

    ph = generate_phantom(PhantomParams(seed=5, sex="F", age_years=40, region="head", matrix=128,
                                        slice_thickness_mm=5.0))
    model = OrganDoseModel(REPO_ROOT / "models" / "organ_dose")
    sp = (abs(ph.ct.affine_lps[2, 2]), abs(ph.ct.affine_lps[1, 1]), abs(ph.ct.affine_lps[0, 0]))
    res = predict_organ_doses(model, ph.ct.hu, sp, ph.organs, DoseParameters("header", 120.0, 50.0, None, 16, 300.0),
                              slice_z_mm=ph.ct.slice_z_mm, affine_lps=ph.ct.affine_lps, workers=1)
    assert any("start angle" in n for n in res.notes), res.notes
    rel = {o: d["uncertainty"] / d["dose"] for o, d in res.organ_doses_mgy.items()}
    assert rel["eyes"] > 1.5 * model.uncertainty["head"]["eyes"]  # the angle's spread counts
    assert rel["brain"] == pytest.approx(model.uncertainty["head"]["brain"], abs=0.01)  # hardly any for the brain
    assert rel["eyes"] - model.uncertainty["head"]["eyes"] > 3 * (rel["brain"] - model.uncertainty["head"]["brain"])


def test_operator_dose_scales_with_ctdivol_and_tcm(tmp_path):
    from operators.radiomics_dose.inference import OrganDoseModel, predict_organ_doses, region_slices
    from operators.radiomics_dose.operator import measurement_groups

    d = _synthetic_region(n_pat=12, per=2)
    fitted = fit_region(d, np.arange(len(d.y)), seed=0, epochs=20)
    (tmp_path / "configs").mkdir()
    s = export(fitted, "abdomen", d, tmp_path / "models")
    (tmp_path / "models" / "scalers.json").write_text(__import__("json").dumps({"abdomen": s}))
    (tmp_path / "configs" / "metadata.json").write_text('{"name": "organ_dose", "version": "t"}')
    model = OrganDoseModel(tmp_path)
    hu, aff, lab = _water_cylinder()
    hu[lab > 0] = 50.0
    sp = (5.0, 5.0, 5.0)

    def run(ctdi, ma=None, workers=1):
        dp = DoseParameters("header", 120.0, ctdi, None, 32, 100.0, tube_current_ma=ma)
        return predict_organ_doses(model, hu, sp, lab, dp, regions=["abdomen"], workers=workers)

    r1, r2 = run(5.0), run(10.0)
    assert set(r1.organ_doses_mgy) == {"liver", "kidneys"}
    assert run(5.0, workers=2).organ_doses_mgy == r1.organ_doses_mgy  # worker processes change nothing
    for o in r1.organ_doses_mgy:
        assert r2.organ_doses_mgy[o]["dose"] == pytest.approx(2 * r1.organ_doses_mgy[o]["dose"], rel=1e-3)
    # the kidneys sit on slices 8-11 only: raising the mA there raises their dose by their TCM factor (f = 1.67;
    # the training law has dose ~ TCM factor, so the network's TCM input may move it only by its fitting error)
    ma = np.full(hu.shape[0], 100.0)
    ma[8:12] = 200.0
    r3 = run(5.0, ma)
    f = organ_tcm_factors(np.stack([np.isin(lab, [ORGAN_BY_NAME[o].id]).sum((1, 2)) for o in ("liver", "kidneys")],
                                   1).astype(float), ma)
    assert f[1] > 1.5
    assert r3.organ_doses_mgy["kidneys"]["dose"] == pytest.approx(f[1] * r1.organ_doses_mgy["kidneys"]["dose"],
                                                                  rel=0.02)
    # a longer scan (60 more body slices at a quarter of the mA: a whole-body scan's legs) gives the region
    # what the region's own slices scanned alone with the same tube current give: the scan's CTDIvol, which
    # follows its mean mA, is not the region's
    hu_l = np.concatenate([hu, np.repeat(hu[:1], 60, 0)])
    lab_l = np.concatenate([lab, np.zeros_like(lab[:1]).repeat(60, 0)])
    ma_l = np.concatenate([np.full(hu.shape[0], 100.0), np.full(60, 25.0)])
    ctdi_l = 5.0 * ma_l.mean() / 100.0
    long_scan = predict_organ_doses(model, hu_l, sp, lab_l, DoseParameters("header", 120.0, ctdi_l, None, 32, 100.0,
                                                                           tube_current_ma=ma_l), regions=["abdomen"])
    zs = region_slices(lab_l, ["liver", "kidneys"], 5.0)
    alone = predict_organ_doses(model, hu_l[zs], sp, lab_l[zs], DoseParameters(
        "header", 120.0, ctdi_l * ma_l[zs].mean() / ma_l.mean(), None, 32, 100.0, tube_current_ma=ma_l[zs]),
        regions=["abdomen"])
    assert zs.stop < len(ma_l)  # the window leaves out low-mA slices, so the scan's mean mA is not the region's
    for o in ("liver", "kidneys"):
        assert long_scan.organ_doses_mgy[o]["dose"] == pytest.approx(alone.organ_doses_mgy[o]["dose"], rel=2e-3)
    assert r1.ssde_mgy is not None and r1.dose_source == "header"
    groups = measurement_groups(r1.to_json())
    assert groups[0].measurements[0].value == 5.0
    organ_groups = {g.tracking_id: g for g in groups[1:]}
    g = organ_groups["organ_dose_liver_network"]
    assert g.measurements[0].unit == "mGy" and g.measurements[0].value == r1.organ_doses_mgy["liver"]["dose"]
    assert g.finding_site == ORGAN_BY_NAME["liver"].code


def test_region_table_matches_the_paper():
    assert REGIONS["head"].organs == ("brain", "eyes", "lenses", "optic_nerves", "pituitary_gland")
    assert set(REGIONS["chest"].organs) == {"lungs", "heart", "esophagus", "trachea", "spinal_cord"}
    assert {"liver", "stomach", "kidneys", "pancreas", "spinal_cord"} <= set(REGIONS["abdomen"].organs)
    assert all(o in ORGAN_BY_NAME for r in REGIONS.values() for o in r.organs)
    assert torch.get_num_threads() >= 1


def test_committed_bundle_loads_and_predicts():
    from operators.common.paths import REPO_ROOT
    from operators.radiomics_dose.inference import OrganDoseModel

    model = OrganDoseModel(REPO_ROOT / "models" / "organ_dose")
    assert set(model.models) == {"head", "chest", "abdomen"}
    for region, s in model.scalers.items():
        assert s["organs"] == list(REGIONS[region].organs)
        assert len(s["inputs"]) == 100 + 2 + len(REGIONS[region].organ_inputs) * len(s["organs"])
        assert set(model.uncertainty[region]) == set(s["organs"])
        ones = np.ones(len(s["organs"]))
        r = model.predict_region(region, {}, 120.0, 25.0, ones)  # all radiomics inputs missing
        assert np.all(np.isfinite(r)) and np.all((r > 0.1) & (r < 5.0))
        assert model.predict_region(region, {}, 120.0, 25.0, 2 * ones) == pytest.approx(2 * r, rel=1e-5)


@pytest.mark.slow
def test_app_end_to_end_with_a_dose_report(demo_study, tmp_path):
    """apps/organ_dose on the demo study plus a real Siemens RDSR re-labelled to the study: doses from the
    report's CTDIvol, TID 1500 SR that dciodvfy accepts."""
    import json
    import shutil
    import subprocess
    import sys

    import pydicom
    from _dicom_checks import dciodvfy

    from operators.common.paths import REPO_ROOT, shared_data_dir

    src = shared_data_dir() / "rdsr" / "CT-RDSR-Siemens-Multi-3.dcm"
    if not src.exists() or shutil.which("dciodvfy") is None:
        pytest.skip("shared RDSR sample or dciodvfy absent")
    study = tmp_path / "study"
    shutil.copytree(demo_study.dicom_dir, study)
    any_ct = pydicom.dcmread(next(study.glob("*.dcm")), stop_before_pixels=True)
    rd = pydicom.dcmread(src)
    rd.StudyInstanceUID = any_ct.StudyInstanceUID
    rd.save_as(study / "rdsr.dcm")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO_ROOT / "apps" / "organ_dose"), "-i", str(study), "-o", str(out)],
                       capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["dose_source"] == "rdsr" and res["ctdivol_mgy"] in (8.13, 7.02)
    assert res["organ_doses_mgy"] and all(d["method"] == "network" and d["dose"] > 0
                                          for d in res["organ_doses_mgy"].values())
    errors, _ = dciodvfy(out / "organ_dose_sr.dcm")
    assert not errors, errors
    assert (out / "organ_dose.png").is_file()


def test_region_slices_cut_a_long_scan_to_the_region_organs_plus_margin():
    from operators.common.labels import ORGAN_BY_NAME
    from operators.radiomics_dose.inference import region_slices

    lab = np.zeros((400, 8, 8), np.uint8)
    lab[100:151, 2:5, 2:5] = ORGAN_BY_NAME["liver"].id
    lab[20:380, 4, 4] = ORGAN_BY_NAME["spinal_cord"].id  # runs through every region: does not widen the cut
    zs = region_slices(lab, ["liver", "spinal_cord"], slice_spacing_mm=5.0, margin_mm=100.0)
    assert (zs.start, zs.stop) == (80, 171)
    # near the scan ends the cut stops at the scan; no organ of the region: the whole scan
    lab2 = np.zeros((60, 8, 8), np.uint8)
    lab2[5:10] = ORGAN_BY_NAME["liver"].id
    assert region_slices(lab2, ["liver"], 5.0, 100.0) == slice(0, 30)
    assert region_slices(np.zeros((60, 8, 8), np.uint8), ["liver"], 5.0) == slice(0, 60)


@pytest.mark.slow
def test_app_with_monte_carlo_writes_a_valid_rt_dose(demo_study, tmp_path):
    """apps/organ_dose --mc on the demo study: Monte Carlo organ doses beside the network's, and an RT Dose that
    dciodvfy accepts, on the CT's study and frame of reference, with a dose grid inside the body."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    import pydicom
    from _dicom_checks import dciodvfy

    from operators.common.paths import REPO_ROOT

    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy absent")
    out = tmp_path / "out"
    env = dict(os.environ, CORPUSCT_MC_HISTORIES="2e5")
    r = subprocess.run([sys.executable, str(REPO_ROOT / "apps" / "organ_dose"), "--mc", "-i",
                        str(demo_study.dicom_dir), "-o", str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    mc = res["monte_carlo"]
    assert mc["histories"] == 200000 and mc["calibration"]["ctdivol_mgy"] == res["ctdivol_mgy"]
    methods = {d["method"] for d in res["organ_doses_mgy"].values()}
    assert methods == {"network", "monte_carlo"}
    assert all(d["dose"] > 0 for d in res["organ_doses_mgy"].values())  # no 0 +- 0 from empty tallies
    # soft-tissue organs inside a 120 kVp scan get doses of the order of CTDIvol (not 0, not 10x)
    liver_mc = mc["organ_doses_mgy"]["liver"]["dose"]
    assert 0.3 * res["ctdivol_mgy"] < liver_mc < 3.0 * res["ctdivol_mgy"]
    errors, _ = dciodvfy(out / "dose_rtdose.dcm")
    assert not errors, errors
    rd = pydicom.dcmread(out / "dose_rtdose.dcm")
    ct = pydicom.dcmread(next(demo_study.dicom_dir.rglob("*.dcm")), stop_before_pixels=True)
    assert rd.Modality == "RTDOSE" and rd.StudyInstanceUID == ct.StudyInstanceUID
    assert rd.FrameOfReferenceUID == ct.FrameOfReferenceUID
    dose = rd.pixel_array * float(rd.DoseGridScaling)
    assert dose.max() > 0 and rd.DoseUnits == "GY"


def test_monte_carlo_organs_without_statistics_get_no_dose():
    from operators.radiomics_dose.report import merge_monte_carlo

    net = {"organ_doses_mgy": {"liver": {"dose": 6.0, "method": "network", "uncertainty": 0.5}}, "notes": []}
    mc = {"liver": (10.0, 0.2), "kidneys": (9.0, 0.3), "optic_nerves": (0.0, 0.0), "lenses": (6.0, 6.0)}
    out = merge_monte_carlo(net, mc, {"histories": 1000})
    assert set(out["monte_carlo"]["organ_doses_mgy"]) == {"liver", "kidneys"}
    assert set(out["monte_carlo"]["insufficient_statistics"]) == {"optic_nerves", "lenses"}
    assert out["organ_doses_mgy"]["liver"]["method"] == "network"  # the network's dose stays the main one
    assert out["organ_doses_mgy"]["kidneys"] == {"dose": 9.0, "method": "monte_carlo", "uncertainty": 0.3}
    assert "optic_nerves" not in out["organ_doses_mgy"] and "lenses" not in out["organ_doses_mgy"]
    assert any("optic_nerves" in n for n in out["notes"])


def test_a_region_applies_only_when_the_scan_holds_its_whole_anchor_organ():
    """An abdomen scan with the lung bases: the chest network (trained on scans holding the whole lungs) is not
    used, and the result says why; the liver, wholly inside, makes it an abdomen scan."""
    from operators.common.labels import ORGAN_BY_NAME
    from operators.radiomics_dose.inference import regions_in_scan

    lab = np.zeros((60, 40, 40), np.uint8)
    lab[20:45, 5:35, 5:35] = ORGAN_BY_NAME["liver"].id  # 25 x 30 x 30 voxels of 5 x 5 x 5 mm = 2.8 l: whole
    lab[45:60, 5:35, 5:35] = ORGAN_BY_NAME["lungs"].id  # 1.7 l of lung, up to the last slice: cut by the scan
    notes = []
    assert regions_in_scan(lab, (5.0, 5.0, 5.0), notes=notes) == ["abdomen"]
    assert len(notes) == 1 and "chest" in notes[0] and "lungs" in notes[0]
    lab[59] = 0  # the lungs now end inside the scan: a chest network may read them
    assert regions_in_scan(lab, (5.0, 5.0, 5.0)) == ["abdomen", "chest"]
    # a few stray liver voxels on the first slice, far from the liver (a segmentation's false positive), do not
    # make the scan cut the liver; the liver itself reaching the first slice does
    lab[0, 2:4, 2:5] = ORGAN_BY_NAME["liver"].id
    assert regions_in_scan(lab, (5.0, 5.0, 5.0)) == ["abdomen", "chest"]
    lab[0:20, 5:35, 5:35] = ORGAN_BY_NAME["liver"].id
    assert regions_in_scan(lab, (5.0, 5.0, 5.0)) == ["chest"]


def test_inputs_outside_the_training_range_are_reported():
    from types import SimpleNamespace

    from operators.radiomics_dose.inference import OrganDoseModel

    fake = SimpleNamespace(scalers={"abdomen": {"inputs": ["body:original_shape_MeshVolume", "dw_cm", "inverse_kvp"],
                                                "x_train_min": [1e6, 20.0, float("nan")],
                                                "x_train_max": [4e6, 34.0, float("nan")]}})
    check = OrganDoseModel.outside_training_range
    assert check(fake, "abdomen", [2e6, 30.0, 120.0]) == {}
    assert check(fake, "abdomen", [2e6, 37.6, 120.0]) == {"dw_cm": (37.6, 20.0, 34.0)}  # a very large patient
    assert set(check(fake, "abdomen", [5e5, 30.0, float("nan")])) == {"body:original_shape_MeshVolume"}
    assert check(SimpleNamespace(scalers={"abdomen": {"inputs": ["kvp"]}}), "abdomen", [80.0]) == {}  # old bundle
    # the network is given inputs held to the training range (no extrapolation); NaN (missing) stays NaN
    held = OrganDoseModel.clipped(fake, "abdomen", [5e5, 37.6, 120.0])
    assert held == [1e6, 34.0, 120.0]
    assert np.isnan(OrganDoseModel.clipped(fake, "abdomen", [float("nan"), 30.0, 120.0])[0])


def test_a_bundle_with_inputs_this_code_does_not_compute_is_refused(tmp_path):
    """A 0.5.x bundle read 'kvp' (now 1 / kVp, 'inverse_kvp'): loading it names the bundle, the network and the
    input instead of failing mid-prediction."""
    import shutil

    from operators.common.errors import ModelError
    from operators.common.paths import REPO_ROOT
    from operators.radiomics_dose.inference import OrganDoseModel

    bundle = tmp_path / "organ_dose"
    shutil.copytree(REPO_ROOT / "models" / "organ_dose", bundle, ignore=shutil.ignore_patterns("data", "docs"))
    OrganDoseModel(bundle)  # as committed: loads
    scalers = json.loads((bundle / "models" / "scalers.json").read_text())
    names = scalers["chest"]["inputs"]
    names[names.index("inverse_kvp")] = "kvp"
    (bundle / "models" / "scalers.json").write_text(json.dumps(scalers))
    with pytest.raises(ModelError, match=r"chest network.*'kvp'"):
        OrganDoseModel(bundle)
