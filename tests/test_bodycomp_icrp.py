"""Body-composition labels of the ICRP-110 phantoms (models/body_composition/icrp_labels.py) and the ICRP case
source of models/body_composition/data.py. Needs ../shared/data/icrp110 (marked realdata; skipped with the
reason when absent)."""

import numpy as np
import pytest
from scipy import ndimage

from models.body_composition import data as bdata
from models.body_composition import icrp_labels
from models.phantoms import icrp110
from operators.common.labels import BODY_COMPOSITION

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not icrp110.available(),
                                 reason="ICRP-110 phantom data not found (../shared/data/icrp110 or $CORPUSCT_DATA); "
                                        "see ../shared/data/README.md")]

ID = {lab.name: lab.id for lab in BODY_COMPOSITION}
MUSCLE_IDS = (106, 107, 108, 109)


@pytest.fixture(scope="module", params=["AM", "AF"])
def phantom(request):
    p = request.param
    ids, aff = icrp110.load_organ_ids(p)
    return p, ids, aff, icrp_labels.body_composition_labels(p), icrp110.landmarks_mm(p)


def test_class_set_and_ids(phantom):
    _, ids, _, lab, _ = phantom
    assert lab.dtype == np.uint8 and lab.shape == ids.shape
    assert set(np.unique(lab).tolist()) == set(range(8))  # background + all 7 classes
    # spot checks against the ICRP organ list (Annex A), one id of each class
    for oid, name in ((123, "skin"), (42, "bone"), (58, "bone"), (109, "muscle"), (61, "central_nervous_system"),
                      (126, "central_nervous_system"), (95, "internal_organs"), (97, "internal_organs"),
                      (75, "internal_organs"), (63, "internal_organs")):
        assert np.all(lab[ids == oid] == ID[name]), (oid, name)


def test_fat_ids_follow_the_media():
    # adipose medium: residual tissue of the four regions and breast adipose tissue; not breast glandular
    # tissue (1.02 g/cm3) and not the fatty yellow marrow of the medullary cavities (bone)
    for p in icrp110.PHANTOMS:
        assert icrp_labels.fat_ids(p) == (62, 64, 116, 117, 118, 119)


def test_fat_voxels_are_fat_classes_and_lean_voxels_never_are(phantom):
    p, ids, _, lab, _ = phantom
    fat = np.isin(ids, icrp_labels.fat_ids(p))
    assert np.isin(lab[fat], [ID["subcutaneous_fat"], ID["abdominal_visceral_fat"]]).mean() > 0.8
    assert set(np.unique(lab[fat]).tolist()) <= {ID["subcutaneous_fat"], ID["abdominal_visceral_fat"],
                                                 ID["internal_organs"], ID["central_nervous_system"]}
    assert not np.isin(lab[~fat], [ID["subcutaneous_fat"], ID["abdominal_visceral_fat"]]).any()
    lean = np.isin(ids, icrp_labels.CLASS_IDS["muscle"])  # muscle stays muscle except in the spinal canal
    assert (lab[lean] == ID["muscle"]).mean() > 0.995
    assert (lab[fat] == ID["subcutaneous_fat"]).mean() > 0.5  # most body fat is subcutaneous


def test_every_body_voxel_has_a_class_and_air_outside_is_zero(phantom):
    _, ids, _, lab, _ = phantom
    assert np.array_equal(lab > 0, ids > 0)
    assert not lab[ids == 0].any()


def test_avf_only_between_pelvic_floor_and_diaphragm(phantom):
    _, ids, aff, lab, lm = phantom
    z = np.arange(ids.shape[0]) * float(aff[2, 2])
    avf_per_slice = (lab == ID["abdominal_visceral_fat"]).sum(axis=(1, 2))
    floor = lm["ischial_tuberosity"] + 0.3 * (lm["pubic_symphysis"] - lm["ischial_tuberosity"])
    assert avf_per_slice[z > lm["diaphragm_dome"]].sum() == 0
    assert avf_per_slice[z < floor].sum() == 0
    # and there is visceral fat at the waist (L3)
    assert avf_per_slice[int(round(lm["l3"] / float(aff[2, 2])))] > 200
    # no AVF above the lungs / heart in any column (epicardial and mediastinal fat is IO)
    thor = np.isin(ids, (87, 88, 96, 97, 98, 99))
    k_avf = np.where(lab == ID["abdominal_visceral_fat"], np.arange(ids.shape[0])[:, None, None], -1).max(axis=0)
    k_thor = np.where(thor.any(axis=0), np.argmax(thor, axis=0), ids.shape[0])
    assert np.all(k_avf < k_thor)
    # and none touching the heart (ICRP-110 has no diaphragm: fat around and under the heart is pericardial)
    heart = np.isin(ids, (87, 88))
    assert not (ndimage.binary_dilation(heart) & (lab == ID["abdominal_visceral_fat"])).any()


def test_spinal_canal_is_cns_at_l3(phantom):
    """ICRP-110 fills the lumbar canal (cauda equina level) with residual tissue (and some "muscle, trunk" in
    AF): on the L3 slice, the first 5 mm behind the vertebral body on the spine's midline column are CNS."""
    _, ids, aff, lab, lm = phantom
    k = int(round(lm["l3"] / float(aff[2, 2])))
    spine = np.isin(ids[k], (51, 52))
    yy, xx = np.nonzero(spine)
    x = int(round(xx.mean()))
    col_bone, col_lab = spine[:, x], lab[k][:, x]
    runs = np.flatnonzero(np.diff(col_bone.astype(int)))  # transitions along y (anterior -> posterior)
    assert len(runs) >= 3, "expected vertebral body, canal, posterior arch on the midline"
    canal = slice(runs[1] + 1, min(runs[2] + 1, runs[1] + 1 + int(np.ceil(5.0 / float(aff[1, 1])))))
    assert not col_bone[canal].any() and runs[2] > runs[1]  # canal: after the vertebral body, before the arch
    assert np.all(col_lab[canal] == ID["central_nervous_system"])


def _first(mask_1d):
    idx = np.nonzero(mask_1d)[0]
    return int(idx[0]) if len(idx) else None


def test_sf_outside_and_avf_inside_the_abdominal_wall_at_the_waist(phantom):
    """On the L3 slice, along rays from the body surface inwards (anterior columns 15-60 mm off the midline,
    and the left and right rows through the body centre): the fat under the skin is SF and no SF follows AVF;
    where the ray meets abdominal-wall muscle at the end of the subcutaneous fat layer, every SF voxel lies
    before that muscle and every AVF voxel after it or within the closing radius before it (the envelope is the
    muscle closed with a rolling disc of CLOSING_MM, which runs across shallow concavities of its surface). (ICRP-110 AF's wall has gaps where the fat runs on to
    the bowel: there the envelope bridges the gap between the muscle ends, so the deep part of that fat is AVF.)"""
    _, ids, aff, lab, lm = phantom
    k = int(round(lm["l3"] / float(aff[2, 2])))
    sl, ls = ids[k], lab[k]
    dx = float(aff[0, 0])
    trunk = np.isin(sl, (107, 117, 123) + tuple(range(41, 57)) + (58,) + icrp_labels.TRUNK_ORGANS)
    yy, xx = np.nonzero(trunk)
    yc, xc = int(yy.mean()), int(xx.mean())
    rays = []
    for off_mm in (-60, -45, -30, -15, 15, 30, 45, 60):
        x = xc + int(round(off_mm / dx))
        rays.append((sl[:yc, x], ls[:yc, x]))  # anterior -> centre (rows run anterior -> posterior)
    x_lo, x_hi = xx.min(), xx.max()
    rays.append((sl[yc, x_lo:xc], ls[yc, x_lo:xc]))  # right side -> centre (columns run right -> left)
    rays.append((sl[yc, x_hi:xc:-1], ls[yc, x_hi:xc:-1]))  # left side -> centre
    n_sf = n_avf = n_wall = 0
    for ray_ids, ray_lab in rays:
        skin = _first(ray_ids == 123)
        assert skin is not None
        fat_layer_end = skin + 1 + _first(ray_ids[skin + 1:] != 117)
        assert fat_layer_end > skin + 2  # a subcutaneous fat layer under the skin
        assert np.all(ray_lab[skin + 1:skin + 3] == ID["subcutaneous_fat"])
        sf, avf = ray_lab == ID["subcutaneous_fat"], ray_lab == ID["abdominal_visceral_fat"]
        a = _first(avf)
        assert a is None or not sf[a:].any(), "subcutaneous fat deeper than visceral fat"
        n_sf += int(sf.sum())
        n_avf += int(avf.sum())
        if ray_ids[fat_layer_end] != 107:  # no wall muscle on this ray
            continue
        n_wall += 1
        m = fat_layer_end
        assert not sf[m:].any(), "subcutaneous fat inside the abdominal wall muscle"
        tol = int(np.ceil(icrp_labels.CLOSING_MM / dx))
        assert not avf[:max(m - tol, 0)].any(), "visceral fat outside the abdominal wall muscle"
    assert n_wall >= 6 and n_sf > 20 and n_avf > 10


def test_icrp_case_labels_follow_the_hu_and_are_seeded():
    """A small ICRP case (96 x 96, 5 mm pixels, 60 mm of the abdomen): labels resampled with the HU (fat classes
    at fat HU, muscle at muscle HU, bone dense, background is air or table) and the same twice."""
    lm = icrp110.landmarks_mm("AM")
    sp = icrp110.SynthesisParams(seed=7, scale_lr=1.1, scale_ap=1.05, deform_mm=3.0, matrix=96, pixel_mm=5.0,
                                 z_range_mm=(lm["l3"] - 30.0, lm["l3"] + 30.0), noise_hu=5.0, table=False)
    case = bdata.IcrpCase("AM", "abdomen", sp)
    s = bdata.synthesize_icrp_case(case)
    lab, hu = s.organs, s.ct.hu
    assert lab.shape == hu.shape
    assert -160 < np.median(hu[lab == ID["subcutaneous_fat"]]) < -50
    assert -160 < np.median(hu[lab == ID["abdominal_visceral_fat"]]) < -40
    assert 10 < np.median(hu[lab == ID["muscle"]]) < 90
    assert np.median(hu[lab == ID["bone"]]) > 150
    assert np.median(hu[lab == 0]) < -900
    assert (lab == ID["abdominal_visceral_fat"]).sum() > 50
    again = bdata.synthesize_icrp_case(case)
    assert np.array_equal(again.organs, lab) and np.array_equal(again.ct.hu, hu)


def test_icrp_case_params_seeded_and_disjoint():
    a, b = bdata.icrp_case_params(3, 0), bdata.icrp_case_params(3, 0)
    assert a == b and a.phantom == "AF"
    assert bdata.icrp_case_params(3, 1000).synthesis.seed != a.synthesis.seed
    r = bdata.icrp_case_params(0, 1000, regions=("abdomen", "trunk"))
    lm = icrp110.landmarks_mm("AM")
    lo, hi = r.synthesis.z_range_mm
    assert r.region == "abdomen" and lo < lm["l3"] * r.synthesis.scale_z < hi
    with pytest.raises(ValueError, match="source"):
        bdata.build(None, 1, 0, source="nope")


def test_parallel_build_writes_the_same_cases_as_serial(tmp_path, monkeypatch):
    """data.build with workers > 1 writes every case once, under its own name, from its own seed, and leaves
    no temporary file; the case builder is replaced by a fast seeded one (the orchestration is under test)."""
    import json

    def fake_case(p):
        rng = np.random.default_rng(p.seed)
        return {"x": rng.normal(size=(2, 3, 3)).astype(np.float16), "y": rng.integers(0, 8, (2, 3, 3), np.uint8),
                "params": json.dumps({"seed": p.seed, "region": p.region})}

    monkeypatch.setattr(bdata, "make_case", fake_case)
    serial = bdata.build(tmp_path / "serial", 5, 3, workers=1)
    (tmp_path / "par").mkdir()
    np.savez_compressed(tmp_path / "par" / serial[1].name, x=np.zeros(1), y=np.zeros(1), params="kept")  # existing
    parallel = bdata.build(tmp_path / "par", 5, 3, workers=3)
    assert [p.name for p in serial] == [p.name for p in parallel]
    assert sorted(f.name for f in (tmp_path / "par").iterdir()) == sorted(p.name for p in parallel)  # no .tmp
    for i, (a, b) in enumerate(zip(serial, parallel, strict=True)):
        da, db = np.load(a), np.load(b)
        if i == 1:
            assert str(db["params"]) == "kept"  # an existing case is not rebuilt
            continue
        assert json.loads(str(da["params"]))["seed"] == 3000 + i
        assert np.array_equal(da["x"], db["x"]) and np.array_equal(da["y"], db["y"])
