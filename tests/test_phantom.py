"""Procedural phantom and demo study: determinism, HU realism, anatomy placement (LPS), labels, DICOM validity.

Small grids keep the module fast; the full-size default demo is timed in a ``slow`` test and in
benchmarks/bench_phantom.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _dicom_checks import dciodvfy, needs_dciodvfy

from models.phantoms import PhantomParams, generate_phantom, write_ct_series, write_demo_study
from models.phantoms.dicom_export import StudyInfo, uid_from
from models.phantoms.tissues import T
from operators.common.labels import BODY_COMPOSITION_BY_NAME, LANDMARKS, ORGAN_BY_NAME, body_part_interval_mm
from operators.common.volume import CTMetadata, CTVolume, affine_from_dicom, load_nifti

O = {name: lab.id for name, lab in ORGAN_BY_NAME.items()}  # noqa: E741
BC = {name: lab.id for name, lab in BODY_COMPOSITION_BY_NAME.items()}

WHOLE = dict(seed=3, sex="M", age_years=40.0, bmi=24.0, region="whole", matrix=160, slice_thickness_mm=5.0)


@pytest.fixture(scope="module")
def whole():
    return generate_phantom(PhantomParams(**WHOLE))


def _centroid_lps(ph, organ: str) -> np.ndarray:
    k, j, i = np.nonzero(ph.organs == O[organ])
    assert len(k), f"{organ} missing"
    return ph.ct.index_to_lps(np.stack([i, j, k], 1).mean(0))[0]


def _slice_index(ph, z_mm: float) -> int:
    return int(np.argmin(np.abs(ph.ct.slice_z_mm - z_mm)))


# --- determinism ------------------------------------------------------------------------------------

def test_same_seed_same_volume_different_seed_differs():
    kw = dict(region="pelvis", matrix=64, slice_thickness_mm=10.0)
    a = generate_phantom(PhantomParams(seed=11, **kw))
    b = generate_phantom(PhantomParams(seed=11, **kw))
    c = generate_phantom(PhantomParams(seed=12, **kw))
    assert np.array_equal(a.ct.hu, b.ct.hu)
    assert np.array_equal(a.organs, b.organs)
    assert a.landmarks_mm == b.landmarks_mm
    assert a.ct.hu.shape == c.ct.hu.shape and not np.array_equal(a.ct.hu, c.ct.hu)


def test_volume_conventions(whole):
    ct = whole.ct
    assert ct.hu.dtype == np.float32 and ct.hu.ndim == 3
    assert whole.organs.shape == ct.shape == whole.body_composition.shape
    assert whole.organs.dtype == np.uint8 and whole.body_composition.dtype == np.uint8
    # standard axial: columns towards patient left (+x), rows towards posterior (+y), head-first slices
    assert np.allclose(ct.affine_lps[:3, 0] / np.linalg.norm(ct.affine_lps[:3, 0]), [1, 0, 0])
    assert np.allclose(ct.affine_lps[:3, 1] / np.linalg.norm(ct.affine_lps[:3, 1]), [0, 1, 0])
    assert ct.affine_lps[2, 2] < 0 and np.all(np.diff(ct.slice_z_mm) < 0)
    assert set(whole.landmarks_mm) == set(LANDMARKS)
    assert len(whole.body_parts) == ct.shape[0]
    assert ct.meta.tube_current_ma.shape == (ct.shape[0],)


def test_bad_parameters_are_refused():
    for bad in (dict(sex="X"), dict(region="knee"), dict(age_years=0.2), dict(bmi=80.0), dict(contrast="oral")):
        with pytest.raises(ValueError):
            PhantomParams(**bad).resolved()


# --- HU realism -----------------------------------------------------------------------------------------

def test_tissue_hu_ranges(whole):
    hu, org, tis = whole.ct.hu, whole.organs, whole.tissues
    assert np.median(hu[org == O["lungs"]]) < -700
    assert -130 < np.median(hu[tis == T.subcutaneous_fat]) < -70
    assert 40 < np.median(hu[org == O["liver"]]) < 70  # unenhanced
    assert 30 < np.median(hu[tis == T.muscle]) < 60
    assert np.median(hu[tis == T.cortical_bone]) > 400
    assert np.median(hu[org == O["brain"]]) == pytest.approx(33, abs=12)
    air = hu[:3, :3, :3]
    assert np.median(air) < -950
    # smooth organ texture plus correlated noise: not flat, not absurd
    liver = hu[org == O["liver"]]
    assert 5 < liver.std() < 40


def test_portal_phase_enhances_liver_and_aorta():
    kw = dict(seed=2, region="abdomen", matrix=96, slice_thickness_mm=8.0)
    plain = generate_phantom(PhantomParams(contrast="none", **kw))
    portal = generate_phantom(PhantomParams(contrast="portal", **kw))
    m = plain.organs == O["liver"]
    assert np.median(portal.ct.hu[m]) > np.median(plain.ct.hu[m]) + 30
    a = plain.organs == O["aorta"]
    assert np.median(portal.ct.hu[a]) > 120


def test_label_maps_align_with_hu(whole):
    hu, org, bc = whole.ct.hu, whole.organs, whole.body_composition
    assert np.mean(hu[org == O["lungs"]] < -500) > 0.85
    assert np.mean(hu[bc == BC["subcutaneous_fat"]] < -30) > 0.85
    assert np.mean(hu[org == O["bones"]] > 100) > 0.6
    outside = bc == 0
    assert np.median(hu[outside]) < -900


# --- anatomy placement (LPS: +x patient left, +y posterior, +z head) -------------------------------------

def test_organs_on_the_correct_side(whole):
    assert _centroid_lps(whole, "liver")[0] < -20  # patient right
    assert _centroid_lps(whole, "gallbladder")[0] < 0
    assert _centroid_lps(whole, "inferior_vena_cava")[0] < 0
    assert _centroid_lps(whole, "spleen")[0] > 40  # patient left
    assert _centroid_lps(whole, "stomach")[0] > 0
    assert _centroid_lps(whole, "heart")[0] > 0  # heart towards the left
    # in a radiological display (column 0 on the viewer's left) the liver is on the image's left half
    k, j, i = np.nonzero(whole.organs == O["liver"])
    assert i.mean() < whole.ct.shape[2] / 2


def test_organs_anterior_posterior_and_levels(whole):
    L = whole.landmarks_mm
    heart, aorta = _centroid_lps(whole, "heart"), _centroid_lps(whole, "aorta")
    k = _slice_index(whole, 0.5 * (L["heart_top"] + L["heart_bottom"]))
    jj, ii = np.nonzero(whole.organs[k] == O["spinal_cord"])
    cord_y = whole.ct.index_to_lps([0, jj.mean(), k])[0, 1]
    assert heart[1] < cord_y - 60  # heart anterior to the spine
    kid = _centroid_lps(whole, "kidneys")
    assert kid[1] > _centroid_lps(whole, "liver")[1]  # retroperitoneal: posterior
    assert kid[1] > _centroid_lps(whole, "pancreas")[1]
    assert L["kidney_bottom"] < kid[2] < L["kidney_top"]
    assert _centroid_lps(whole, "urinary_bladder")[2] < L["iliac_crest"]
    assert _centroid_lps(whole, "brain")[2] > L["skull_base"]
    assert _centroid_lps(whole, "eyes")[1] < _centroid_lps(whole, "brain")[1]  # eyes anterior
    assert L["femoral_heads"] - 40 < _centroid_lps(whole, "femoral_heads")[2] < L["femoral_heads"] + 40
    assert _centroid_lps(whole, "lungs")[2] > _centroid_lps(whole, "liver")[2]
    assert aorta[0] > -25  # the descending / abdominal aorta runs left of the IVC
    assert aorta[0] > _centroid_lps(whole, "inferior_vena_cava")[0]


def test_landmarks_ordered_head_to_feet(whole):
    z = [whole.landmarks_mm[n] for n in LANDMARKS]
    assert all(a >= b for a, b in zip(z, z[1:], strict=False)), dict(zip(LANDMARKS, np.round(z), strict=False))
    L = whole.landmarks_mm
    assert L["vertex"] - L["sole"] == pytest.approx(whole.params.height_cm * 10, rel=0.01)


@pytest.mark.parametrize("kw", [dict(sex="F", age_years=4, bmi=17), dict(sex="M", age_years=9, bmi=15),
                                dict(sex="F", age_years=14, bmi=22), dict(sex="M", age_years=30, bmi=42),
                                dict(sex="F", age_years=88, bmi=30, arms="up"), dict(sex="M", age_years=70, bmi=14)])
def test_landmark_order_holds_across_patients(kw):
    ph = generate_phantom(PhantomParams(seed=int(kw["age_years"]), region="abdomen", matrix=48,
                                        slice_thickness_mm=15.0, **kw))
    z = [ph.landmarks_mm[n] for n in LANDMARKS]
    bad = [(a, b) for a, b, za, zb in zip(LANDMARKS, LANDMARKS[1:], z, z[1:], strict=False) if za < zb]
    assert not bad, bad


def test_landmarks_match_the_anatomy(whole):
    L, org, z = whole.landmarks_mm, whole.organs, whole.ct.slice_z_mm
    dz = abs(z[1] - z[0])

    def zrange(organ):
        k = np.nonzero((org == O[organ]).any(axis=(1, 2)))[0]
        return z[k].min(), z[k].max()

    lo, hi = zrange("lungs")
    assert hi == pytest.approx(L["lung_apex"], abs=2 * dz) and lo == pytest.approx(L["lung_base"], abs=2 * dz)
    lo, hi = zrange("kidneys")
    assert hi == pytest.approx(L["kidney_top"], abs=dz) and lo == pytest.approx(L["kidney_bottom"], abs=dz)
    lo, hi = zrange("heart")
    assert hi == pytest.approx(L["heart_top"], abs=dz) and lo == pytest.approx(L["heart_bottom"], abs=2 * dz)
    lo, hi = zrange("brain")
    assert hi == pytest.approx(L["vertex"] - 8, abs=2 * dz)
    lo, hi = zrange("femoral_heads")
    assert L["femoral_head_top"] - 3 - dz <= hi <= L["femoral_head_top"]  # acetabular roof: head top + cartilage


def test_body_parts_consistent_with_landmarks(whole):
    L, z = whole.landmarks_mm, whole.ct.slice_z_mm
    from operators.common.labels import BODY_PARTS

    for bp in BODY_PARTS:
        iv = body_part_interval_mm(bp, L)
        if iv is None:
            continue
        for k in range(len(z)):
            assert (bp.name in whole.body_parts[k]) == (iv[0] <= z[k] <= iv[1])
    arm_tissue = whole.arms_present
    assert arm_tissue.any() and not arm_tissue.all()
    assert [("arms" in p) for p in whole.body_parts] == list(arm_tissue)
    # arms down: present at the waist, absent at the knees and the head
    assert whole.arms_present[_slice_index(whole, L["l3"])]
    assert not whole.arms_present[_slice_index(whole, L["knees"])]
    assert not whole.arms_present[_slice_index(whole, L["orbit_floor"])]


def test_body_composition_rules(whole):
    L, bc, z = whole.landmarks_mm, whole.body_composition, whole.ct.slice_z_mm
    present = {name: np.nonzero((bc == i).any(axis=(1, 2)))[0] for name, i in BC.items()}
    for name, ks in present.items():
        assert len(ks), name
    # visceral fat only inside the abdominal cavity: between the diaphragm and the pelvic floor
    zs = z[present["abdominal_visceral_fat"]]
    assert zs.max() <= L["diaphragm_dome"] + 5 and zs.min() >= L["ischial_tuberosity"] - 10
    # CNS = brain + spinal cord (+ CSF)
    cns = bc == BC["central_nervous_system"]
    assert np.all(cns[whole.organs == O["brain"]]) and np.all(cns[whole.organs == O["spinal_cord"]])
    # skin is the outer rim: every body voxel touching air in-plane is skin (or bone at the surface)
    k = _slice_index(whole, L["l3"])
    body = bc[k] > 0
    edge = body & ~np.pad(body, 1)[2:, 1:-1] | body & ~np.pad(body, 1)[1:-1, 2:]
    assert np.mean(bc[k][edge] == BC["skin"]) > 0.95
    # subcutaneous fat lies outside the muscle ring: at L3 the SF ring surrounds the visceral fat
    sf = np.nonzero(bc[k] == BC["subcutaneous_fat"])
    vf = np.nonzero(bc[k] == BC["abdominal_visceral_fat"])
    assert sf[1].min() < vf[1].min() and sf[1].max() > vf[1].max()


def test_subcutaneous_and_visceral_fat_grow_with_bmi():
    areas = []
    for bmi in (19.0, 26.0, 34.0):
        ph = generate_phantom(PhantomParams(seed=5, region="abdomen", matrix=96, slice_thickness_mm=10.0, bmi=bmi,
                                            arms="up"))
        k = _slice_index(ph, ph.landmarks_mm["l3"])
        px = ph.ct.spacing_mm[1] * ph.ct.spacing_mm[2] / 100.0
        areas.append(((ph.body_composition[k] == BC["subcutaneous_fat"]).sum() * px,
                      (ph.body_composition[k] == BC["abdominal_visceral_fat"]).sum() * px))
    sf, vf = zip(*areas, strict=False)
    assert sf[0] < sf[1] < sf[2] and vf[0] < vf[2]
    assert 20 < sf[0] < 200 and sf[2] > 250  # cm2 at L3


def test_children_have_bigger_heads_and_women_wider_hips():
    child = generate_phantom(PhantomParams(seed=1, age_years=6, sex="M", region="head", matrix=64,
                                           slice_thickness_mm=10.0))
    adult = generate_phantom(PhantomParams(seed=1, age_years=40, sex="M", region="head", matrix=64,
                                           slice_thickness_mm=10.0))
    hc, ha = (p.params.height_cm * 10 for p in (child, adult))
    head = [(p.landmarks_mm["vertex"] - p.landmarks_mm["mandible_bottom"]) for p in (child, adult)]
    assert head[0] / hc > 1.2 * head[1] / ha
    assert head[0] < head[1]


def test_tube_current_follows_attenuation(whole):
    L, ma = whole.landmarks_mm, whole.ct.meta.tube_current_ma
    shoulders = ma[_slice_index(whole, L["shoulder_top"] - 20)]  # through the humeral heads
    lungs = ma[np.argmax((whole.organs == O["lungs"]).sum(axis=(1, 2)))]  # largest lung cross-section
    pelvis = ma[_slice_index(whole, L["femoral_heads"])]
    neck = ma[_slice_index(whole, L["c7"])]
    assert shoulders > lungs and pelvis > lungs and lungs > neck
    assert np.all(np.diff(np.sign(np.diff(whole.dw_mm)))[:0] == 0)  # dw is a plain per-slice array
    m = whole.ct.meta
    assert m.ctdivol_mgy == pytest.approx(0.075 * ma.mean() * 0.5, rel=0.02)


# --- DICOM study ------------------------------------------------------------------------------------------

def _read_series(folder: Path) -> dict[int, list[pydicom.Dataset]]:
    out: dict[int, list[pydicom.Dataset]] = {}
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        out.setdefault(int(ds.SeriesNumber), []).append(ds)
    for v in out.values():
        v.sort(key=lambda d: int(d.InstanceNumber))
    return out


def test_demo_study_layout_and_headers(demo_study):
    root, dicom, labels = demo_study.root, demo_study.dicom_dir, demo_study.labels_dir
    assert dicom.is_dir() and labels.is_dir() and dicom.parent == labels.parent == root
    assert not list(dicom.rglob("*.nii*")) and not list(dicom.rglob("*.json"))
    assert (labels / "organs.nii.gz").is_file() and (labels / "body_composition.nii.gz").is_file()
    series = _read_series(dicom)
    assert sorted(series) == [1, 2, 3]
    study_uids = {d.StudyInstanceUID for v in series.values() for d in v}
    series_uids = {v[0].SeriesInstanceUID for v in series.values()}
    assert len(study_uids) == 1 and len(series_uids) == 3
    assert len({d.FrameOfReferenceUID for v in series.values() for d in v}) == 1
    loc, ax, cor = series[1], series[2], series[3]
    assert len(loc) == 1 and list(loc[0].ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert list(ax[0].ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert list(cor[0].ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert [float(v) for v in cor[0].ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert [float(v) for v in ax[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    ph = demo_study.phantom
    d = ax[0]
    assert d.Manufacturer == "CorpusCT procedural phantom" and d.Modality == "CT"
    assert d.PatientSex == ph.params.sex and d.PatientAge == f"{int(ph.params.age_years):03d}Y"
    assert float(d.PatientWeight) == pytest.approx(ph.params.weight_kg, rel=0.01)
    assert float(d.PatientSize) == pytest.approx(ph.params.height_cm / 100, abs=0.01)
    assert float(d.KVP) == 120 and float(d.CTDIvol) > 0 and d.ConvolutionKernel
    assert float(d.SliceThickness) == ph.params.slice_thickness_mm
    assert "PHANTOM" in str(d.PatientName) and d.PatientIdentityRemoved == "YES"
    ma = [int(x.XRayTubeCurrent) for x in ax]
    assert np.allclose(ma, np.round(ph.ct.meta.tube_current_ma), atol=1) and len(set(ma)) > 3
    assert [int(x.Exposure) for x in ax] == [round(m * 0.5) for m in ph.ct.meta.tube_current_ma]
    # geometry and HU round trip
    for k in (0, len(ax) // 2, len(ax) - 1):
        ipp = np.array([float(v) for v in ax[k].ImagePositionPatient])
        assert np.allclose(ipp, ph.ct.index_to_lps([0, 0, k])[0], atol=1e-3)
        hu = ax[k].pixel_array * float(ax[k].RescaleSlope) + float(ax[k].RescaleIntercept)
        assert np.abs(hu - ph.ct.hu[k]).max() <= 0.5 + 1e-3


def test_labels_beside_dicom_match_the_axial_grid(demo_study):
    ph = demo_study.phantom
    org, aff = load_nifti(demo_study.labels_dir / "organs.nii.gz")
    bc, aff2 = load_nifti(demo_study.labels_dir / "body_composition.nii.gz")
    assert np.array_equal(org, ph.organs) and np.array_equal(bc, ph.body_composition)
    assert np.allclose(aff, ph.ct.affine_lps) and np.allclose(aff2, ph.ct.affine_lps)
    info = json.loads(demo_study.json_path.read_text())
    assert set(info["landmarks_mm"]) == set(LANDMARKS)
    assert len(info["body_parts_per_slice"]) == len(info["slice_z_mm"]) == ph.ct.shape[0]
    assert info["series"]["axial"]["series_instance_uid"] == pydicom.dcmread(
        sorted(demo_study.dicom_dir.glob("S002_*.dcm"))[0], stop_before_pixels=True).SeriesInstanceUID


def test_uids_deterministic_from_seed(tmp_path):
    kw = dict(region="head", matrix=48, slice_thickness_mm=10.0)
    a = write_demo_study(generate_phantom(PhantomParams(seed=4, **kw)), tmp_path / "a", coronal=False)
    b = write_demo_study(generate_phantom(PhantomParams(seed=4, **kw)), tmp_path / "b", coronal=False)
    c = write_demo_study(generate_phantom(PhantomParams(seed=5, **kw)), tmp_path / "c", coronal=False)
    ua = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in sorted(a.dicom_dir.iterdir())]
    ub = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in sorted(b.dicom_dir.iterdir())]
    uc = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in sorted(c.dicom_dir.iterdir())]
    assert ua == ub and not set(ua) & set(uc) and len(set(ua)) == len(ua)
    assert uid_from(1, "x") == uid_from(1, "x") != uid_from(2, "x")


@needs_dciodvfy
def test_every_demo_image_passesdciodvfy(demo_study):
    files = sorted(demo_study.dicom_dir.iterdir())
    assert files
    for f in files:
        errors, warnings = dciodvfy(f)
        assert not errors, f"{f.name}: {errors}"
        # the only accepted warning: REFORMATTED is not a CT defined term for Image Type value 3
        assert all("REFORMATTED" in w for w in warnings), f"{f.name}: {warnings}"


@needs_dciodvfy
def test_write_ct_series_oblique_reversed_geometry(tmp_path):
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 200, (3, 20, 30)).astype(np.float32)
    aff = affine_from_dicom(np.array([10.0, -20.0, 300.0]), np.array([0.98, 0.2, 0, -0.2, 0.98, 0]) / np.hypot(0.98, 0.2),
                            np.array([0.7, 0.8]), np.array([0, 0, 2.5]))
    vol = CTVolume(hu, aff, CTMetadata(slice_thickness_mm=2.5, tube_current_ma=np.array([100.0, 110, 120])))
    paths = write_ct_series(vol, tmp_path, 7, "oblique", study=StudyInfo.from_seed(9), body_part_examined="CHEST",
                            signed=True)
    assert len(paths) == 3
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], vol.index_to_lps([0, 0, k])[0], atol=1e-4)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.7, 0.8])
        back = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.abs(back - hu[k]).max() <= 0.5 + 1e-3
        errors, _ = dciodvfy(p)
        assert not errors, errors


def test_cli_writes_a_study(tmp_path):
    from models.phantoms.__main__ import main

    rc = main(["demo", "--out", str(tmp_path / "s"), "--region", "head", "--seed", "2", "--sex", "F", "--age", "9",
               "--matrix", "64", "--slice-thickness", "8"])
    assert rc == 0
    files = list((tmp_path / "s" / "dicom").iterdir())
    assert files and all(f.suffix == ".dcm" for f in files)
    ds = pydicom.dcmread(sorted(files)[-1], stop_before_pixels=True)
    assert ds.PatientSex == "F" and ds.PatientAge == "009Y"
    assert main(["demo", "--out", str(tmp_path / "bad"), "--age", "300"]) == 2


@pytest.mark.slow
def test_default_demo_is_fast_enough(tmp_path):
    import time

    from models.phantoms import DEMO_PARAMS

    t0 = time.perf_counter()
    ph = generate_phantom(DEMO_PARAMS)
    t1 = time.perf_counter()
    write_demo_study(ph, tmp_path)
    assert t1 - t0 < 60, f"generation took {t1 - t0:.1f} s"
    vols = ph.summary()["organ_volumes_ml"]
    assert 1000 < vols["liver"] < 2400 and 300 < vols["heart"] < 1000 and 1000 < vols["brain"] < 1700
    assert 200 < vols["kidneys"] < 450 and 80 < vols["spleen"] < 400 and 3000 < vols["lungs"] < 7500
