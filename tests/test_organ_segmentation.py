"""Organ segmentation: preprocessing round trips, field-of-view gating, per-organ bundles, the label-map bundle
backend (a tiny TorchScript bundle built here), results and STL meshes.

The bundles built here are real TorchScript networks with fixed weights (HU-band detectors), not mocks: the
operator runs them exactly as it runs trained ones. ``make_band_bundle`` is shared with the app test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from operators.common.errors import ModelError
from operators.common.labels import ORGAN_BY_NAME
from operators.common.volume import CTVolume, axial_affine
from operators.graynet_range.range_selector import ScanRange
from operators.organ_segmentation import preprocess as pp
from operators.organ_segmentation.backends import LabelMapBundle
from operators.organ_segmentation.inference import (
    INSIDE,
    STATUS_NOT_IN_FOV,
    STATUS_SEGMENTED,
    OrganModel,
    _composite,
    load_organ_models,
    organ_slices,
    segment_organs,
)
from operators.organ_segmentation.results import dice, mesh_volume_ml, organ_results, read_stl, write_stl


class Band(torch.nn.Module):
    """Logits > 0 where the centre channel's normalised intensity lies in [lo, hi] (a fixed-weight 'network')."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x):
        c = x[:, x.shape[1] // 2:x.shape[1] // 2 + 1]
        return 40.0 * torch.minimum(c - self.lo, self.hi - c)


def make_band_bundle(root: Path, organ: str, lo_hu: float, hi_hu: float, window=None, channels: int = 1) -> Path:
    """A per-organ bundle (models/model.ts + configs/metadata.json) whose network marks HU in [lo_hu, hi_hu]."""
    w0, w1 = window or pp.window_for(organ)
    d = Path(root) / organ
    (d / "models").mkdir(parents=True, exist_ok=True)
    (d / "configs").mkdir(exist_ok=True)
    torch.jit.script(Band((lo_hu - w0) / (w1 - w0), (hi_hu - w0) / (w1 - w0))).save(str(d / "models" / "model.ts"))
    (d / "configs" / "metadata.json").write_text(json.dumps(
        {"name": f"test_{organ}", "version": "0.0.1", "organ": organ, "window_hu": [w0, w1], "channels": channels}))
    (d / "configs" / "inference.json").write_text("{}")
    return d


def _body_volume(nz=12, ny=160, nx=200, table=True):
    """Elliptic body (40 HU), a brighter 'organ' (120 HU) and a CT table plate below the body."""
    hu = np.full((nz, ny, nx), -1000.0, np.float32)
    yy, xx = np.mgrid[:ny, :nx]
    body = ((yy - 70) / 60.0) ** 2 + ((xx - 100) / 80.0) ** 2 < 1
    hu[:, body] = 40.0
    organ = np.zeros(hu.shape, bool)
    organ[3:9, ((yy - 50) / 18.0) ** 2 + ((xx - 70) / 25.0) ** 2 < 1] = True
    hu[organ] = 120.0
    if table:
        hu[:, 145:150, 10:190] = 300.0
    return hu, organ


# --- preprocessing ------------------------------------------------------------------------------------------

AFFINES = {
    "head_first": axial_affine((-2.5, 1.5, 1.5), (-150.0, -120.0, 300.0)),
    "feet_first": axial_affine((2.5, 1.5, 1.5), (-150.0, -120.0, 0.0)),
    "flipped_rows_cols": np.array([[-1.5, 0, 0, 150.0], [0, -1.5, 0, 120.0], [0, 0, 2.5, 0.0], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", list(AFFINES))
def test_canonical_round_trip(name):
    a = np.random.default_rng(0).normal(size=(5, 7, 9)).astype(np.float32)
    c, aff_c = pp.canonical(a, AFFINES[name])
    assert np.array_equal(pp.from_canonical(c, AFFINES[name]), a)
    assert aff_c[0, 0] > 0 and aff_c[1, 1] > 0 and aff_c[2, 2] > 0  # columns -> left, rows -> posterior, up


def test_windows_and_normalisation():
    assert pp.window_for("liver") == (-70.0, 170.0)  # the paper's soft-tissue window
    assert pp.window_for("lungs")[0] <= -950 and pp.window_for("bones")[1] >= 1000
    x = pp.normalise(np.array([-1000.0, -70.0, 50.0, 170.0, 900.0]), (-70.0, 170.0))
    assert x.dtype == np.float32 and x[0] == 0.0 and x[1] == 0.0 and x[3] == 1.0 and x[4] == 1.0
    assert len(np.unique(pp.normalise(np.linspace(-100, 200, 5000), (-70.0, 170.0)))) == pp.N_LEVELS


def test_body_box_excludes_table_and_has_network_aspect():
    hu, _ = _body_volume()
    box = pp.body_box(hu, (1.5, 1.5))
    assert box.y0 <= 10 and box.y1 >= 130  # the body: rows 10..130
    assert box.y1 < 145  # not the table at rows 145..150
    assert box.x0 <= 20 and box.x1 >= 180
    ratio = (box.y1 - box.y0) / (box.x1 - box.x0)
    assert abs(ratio - pp.NET_SHAPE[0] / pp.NET_SHAPE[1]) < 0.02


def test_body_box_no_body():
    with pytest.raises(ValueError, match="no body"):
        pp.body_box(np.full((3, 40, 40), -1000.0, np.float32))


@pytest.mark.parametrize("name", list(AFFINES))
def test_mask_round_trip_dice(demo_study, name):
    """A phantom organ mask through to_network / from_network (any storage orientation) keeps Dice > 0.97."""
    ph = demo_study.phantom
    aff = AFFINES[name]
    hu = ph.ct.hu
    if name == "feet_first":
        hu, organs = hu[::-1], ph.organs[::-1]
    elif name == "flipped_rows_cols":
        hu, organs = hu[:, ::-1, ::-1], ph.organs[:, ::-1, ::-1]
    else:
        organs = ph.organs
    hu_c, aff_c = pp.canonical(np.ascontiguousarray(hu), aff)
    box = pp.body_box(hu_c, (aff_c[1, 1], aff_c[0, 0]))
    for organ in ("liver", "kidneys", "spleen"):
        m = organs == ORGAN_BY_NAME[organ].id
        m_c, _ = pp.canonical(m.astype(np.float32), aff)
        x = pp.to_network(m_c, box, (0.0, 1.0))
        assert x.shape == (hu.shape[0], *pp.NET_SHAPE) and x.dtype == np.float32
        back = pp.from_canonical(pp.from_network(x, box, hu_c.shape) >= 0.5, aff)
        assert back.shape == m.shape
        assert dice(back, m) > 0.97, (organ, dice(back, m))


def test_from_network_checks_shape():
    with pytest.raises(ValueError):
        pp.from_network(np.zeros((2, 10, 10), np.float32), pp.Box(0, 10, 0, 10), (2, 10, 10))


# --- field of view ------------------------------------------------------------------------------------------

def _scan_range(parts_per_slice, z):
    n = len(parts_per_slice)
    return ScanRange(slice_z_mm=np.asarray(z, float), part_probabilities=np.zeros((n, 24)),
                     body_parts_per_slice=parts_per_slice, phantom="AM", ref_z_mm=np.asarray(z, float),
                     start_cm=0.0, end_cm=1.0, uncertainty_cm=1.0, method="test")


def test_organ_slices_gating():
    z = np.arange(40) * 5.0  # 200 mm, inferior -> superior
    parts = [["pelvis"]] * 10 + [["lower_abdomen"]] * 10 + [["kidneys"]] * 10 + [["lower_thorax"]] * 10
    sr = _scan_range(parts, z)
    kid = organ_slices("kidneys", sr, z, margin_mm=30.0)
    assert kid.min() == 20 - 6 and kid.max() == 29 + 6  # kidneys slices 20..29 +- 6 slices (30 mm)
    assert len(organ_slices("brain", sr, z)) == 0  # no head part in the scan: not in the field of view
    assert len(organ_slices("bones", sr, z)) == 40  # everywhere
    assert len(organ_slices("liver", None, z)) == 40  # no range: every slice
    # gaps between the organ's parts are searched; unnamed slices next to them too, slices named otherwise not
    parts = [["hips"]] * 6 + [[]] * 4 + [["kidneys"]] * 5 + [["lower_abdomen"]] * 5 + [["kidneys"]] * 5 \
        + [[]] * 5 + [["brain"]] * 10
    kid = organ_slices("kidneys", _scan_range(parts, z), z, margin_mm=10.0)
    assert kid.tolist() == list(range(6 - 2, 30 + 2))
    rev = organ_slices("kidneys", _scan_range(parts[::-1], z[::-1]), z[::-1], margin_mm=10.0)  # head first
    assert sorted(39 - rev) == kid.tolist()


# --- per-organ bundles --------------------------------------------------------------------------------------

def test_segment_organs_on_phantom(demo_study, tmp_path):
    """A bone-band bundle on the demo phantom: overlaps the phantom's bone labels where the band is right, lands
    in the right place (flipping the result front-back ruins it) and reports organs outside the range."""
    ph = demo_study.phantom
    make_band_bundle(tmp_path, "bones", 200.0, 3000.0)
    make_band_bundle(tmp_path, "brain", 20.0, 45.0)
    models = load_organ_models(tmp_path, ["bones", "brain"])
    sr = _scan_range([["upper_abdomen"]] * ph.ct.shape[0], ph.ct.slice_z_mm)
    seg = segment_organs(ph.ct, models, sr, threads=1)
    assert seg.labels.shape == ph.ct.shape and seg.labels.dtype == np.uint8
    assert seg.status == {"bones": STATUS_SEGMENTED, "brain": STATUS_NOT_IN_FOV}
    assert not (seg.labels == ORGAN_BY_NAME["brain"].id).any()
    pred, gt = seg.labels == ORGAN_BY_NAME["bones"].id, ph.organs == ORGAN_BY_NAME["bones"].id
    assert dice(pred, gt) > 0.7
    assert dice(np.flip(pred, 1), gt) < 0.4 and dice(np.flip(pred, 0), gt) < dice(pred, gt) - 0.2


def test_overlapping_organs_go_to_the_more_confident_one(tmp_path):
    """Where two organs' masks overlap the voxel goes to the higher probability, whichever ran first; an organ that
    loses every voxel is "not found", not "segmented" with an empty mask."""
    hu, organ = _body_volume()
    vol = CTVolume(hu, axial_affine((2.5, 1.5, 1.5), (-150.0, -120.0, 0.0)))
    make_band_bundle(tmp_path, "liver", 100.0, 140.0)  # the 120 HU blob, p ~ 0.96 at its centre
    make_band_bundle(tmp_path, "spleen", 0.0, 300.0)  # blob and body, p ~ 1.0 on both
    make_band_bundle(tmp_path, "kidneys", 110.0, 300.0)  # blob only, less sure than the spleen
    for order in (["liver", "spleen", "kidneys"], ["kidneys", "spleen", "liver"]):
        seg = segment_organs(vol, load_organ_models(tmp_path, order), None, threads=1)
        spleen = seg.labels == ORGAN_BY_NAME["spleen"].id
        assert spleen[organ].mean() > 0.95 and spleen.sum() > 2 * organ.sum()
        assert seg.status == {"liver": "not found", "spleen": STATUS_SEGMENTED, "kidneys": "not found"}


def test_neighbour_channels_and_fp16(demo_study, tmp_path):
    """3-channel (neighbouring slices) bundles and fp16-stored weights give the 1-channel fp32 result."""
    ph = demo_study.phantom
    make_band_bundle(tmp_path / "a", "kidneys", 100.0, 400.0)
    make_band_bundle(tmp_path / "b", "kidneys", 100.0, 400.0, channels=3)
    d = tmp_path / "c" / "kidneys"
    make_band_bundle(tmp_path / "c", "kidneys", 100.0, 400.0)
    conv = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.0)
    torch.jit.script(torch.nn.Sequential(conv, Band(0.0, 1.0)).half()).save(str(d / "models" / "model.ts"))
    a = segment_organs(ph.ct, load_organ_models(tmp_path / "a"), threads=1).labels
    b = segment_organs(ph.ct, load_organ_models(tmp_path / "b"), threads=1).labels
    assert OrganModel.from_bundle(d).channels == 1
    c = segment_organs(ph.ct, load_organ_models(tmp_path / "c"), threads=1).labels
    assert (a > 0).sum() > 100 and np.array_equal(a, b)
    assert (c > 0).sum() > 100


def test_bundle_errors(tmp_path):
    make_band_bundle(tmp_path, "liver", 0.0, 100.0)
    with pytest.raises(ModelError, match="spleen"):
        load_organ_models(tmp_path, ["liver", "spleen"])
    with pytest.raises(ModelError, match="not 'spleen'"):
        OrganModel.from_bundle(tmp_path / "liver", "spleen")

    class Bad(torch.nn.Module):
        def forward(self, x):
            return x[:, :, :10]

    torch.jit.script(Bad()).save(str(tmp_path / "liver" / "models" / "model.ts"))
    m = OrganModel.from_bundle(tmp_path / "liver")
    with pytest.raises(ModelError, match="returned shape"):
        m.predict(np.zeros((2, *pp.NET_SHAPE), np.float32))


# --- label-map bundle backend -------------------------------------------------------------------------------

class TwoLabels(torch.nn.Module):
    """A 3-D label-map 'network' in MONAI RAS layout (axis 0 towards the patient's right): label 1 = bone
    (> 200 HU), label 2 = soft tissue 20..80 HU in the patient's right half; 3-channel logits."""

    def forward(self, x):
        n = x.shape[2]
        idx = torch.arange(n).view(1, 1, n, 1, 1)
        right = idx >= n // 2
        bone = x > 200.0
        soft = (x > 20.0) & (x < 80.0) & right & ~bone
        bg = ~(bone | soft)
        return 10.0 * torch.cat([bg.float(), bone.float(), soft.float()], 1)


def _label_map_bundle(root: Path, roi=None) -> Path:
    d = Path(root) / "site_bundle"
    (d / "models").mkdir(parents=True)
    (d / "configs").mkdir()
    torch.jit.script(TwoLabels()).save(str(d / "models" / "model.ts"))
    img = {"num_channels": 1, "is_patch_data": roi is not None, "spatial_shape": list(roi or [])}
    (d / "configs" / "metadata.json").write_text(json.dumps(
        {"name": "site_whole_body", "version": "2.0", "network_data_format": {"inputs": {"image": img}}}))
    return d


@pytest.mark.parametrize("roi", [None, (48, 48, 16)])
def test_label_map_bundle_mapping_and_orientation(demo_study, tmp_path, roi):
    ph = demo_study.phantom
    vol = ph.ct
    b = LabelMapBundle.from_bundle(_label_map_bundle(tmp_path, roi), {1: "bones", 2: "liver"})
    seg = b.segment(vol, threads=1)
    bones, liver = seg.labels == ORGAN_BY_NAME["bones"].id, seg.labels == ORGAN_BY_NAME["liver"].id
    assert set(np.unique(seg.labels)) == {0, ORGAN_BY_NAME["bones"].id, ORGAN_BY_NAME["liver"].id}
    assert np.array_equal(bones, vol.hu > 200.0)
    assert liver.any() and np.all((vol.hu[liver] > 20) & (vol.hu[liver] < 80))
    if roi is not None:  # the toy network's "right half" is relative to its input: a patch here
        return
    # the patient's right = smaller LPS x: every "liver" voxel lies right of the volume's centre column
    ii = np.nonzero(liver)[2]
    x_mm = vol.affine_lps[0, 0] * ii + vol.affine_lps[0, 3]
    centre_x = vol.affine_lps[0, 0] * (vol.shape[2] - 1) / 2 + vol.affine_lps[0, 3]
    assert np.all(x_mm <= centre_x + 1e-6)
    assert seg.status == {"bones": STATUS_SEGMENTED, "liver": STATUS_SEGMENTED}
    assert seg.models == {"site_whole_body": "2.0"}


def test_label_map_bundle_resampled_and_gated(demo_study, tmp_path):
    """With a model spacing the CT is resampled and the labels come back onto the CT grid; organs outside the
    GrayNet range are dropped and reported."""
    vol = demo_study.phantom.ct
    d = _label_map_bundle(tmp_path)
    native = LabelMapBundle.from_bundle(d, {2: "liver"}).segment(vol, threads=1).labels
    coarse = LabelMapBundle.from_bundle(d, {2: "liver"}, spacing_mm=(6.0, 6.0, 6.0)).segment(vol, threads=1)
    assert coarse.labels.shape == vol.shape
    assert dice(coarse.labels > 0, native > 0) > 0.8
    sr = _scan_range([["lower_thorax"]] * vol.shape[0], vol.slice_z_mm)
    gated = LabelMapBundle.from_bundle(d, {1: "bones", 2: "brain"}).segment(vol, sr, threads=1)
    assert gated.status["brain"] == STATUS_NOT_IN_FOV
    assert not (gated.labels == ORGAN_BY_NAME["brain"].id).any()
    with pytest.raises(ModelError, match="not an organ"):
        LabelMapBundle.from_bundle(d, {1: "livre"})


# --- results and meshes -------------------------------------------------------------------------------------

def test_organ_results_volume_and_hu():
    hu, organ = _body_volume(table=False)
    aff = axial_affine((-2.5, 1.5, 1.5), (0.0, 0.0, 0.0))
    vol = CTVolume(hu, aff)
    labels = np.where(organ, ORGAN_BY_NAME["liver"].id, 0).astype(np.uint8)
    res = organ_results(vol, labels, {"liver": STATUS_SEGMENTED, "brain": STATUS_NOT_IN_FOV,
                                      "spleen": "not found"})
    assert res["liver"]["volume_ml"] == pytest.approx(organ.sum() * 2.5 * 1.5 * 1.5 / 1000, rel=1e-3)
    assert res["liver"]["mean_hu"] == pytest.approx(120.0)
    assert res["brain"] == {"volume_ml": None, "mean_hu": None, "status": STATUS_NOT_IN_FOV, "n_voxels": 0}
    assert res["spleen"]["volume_ml"] == 0.0 and res["spleen"]["status"] == "not found"


def test_stl_mesh_in_lps_mm(tmp_path):
    zz, yy, xx = np.mgrid[:30, :50, :50]
    aff = axial_affine((-2.5, 0.8, 0.8), (10.0, 20.0, 300.0))
    sphere = ((zz - 15) * 2.5) ** 2 + ((yy - 25) * 0.8) ** 2 + ((xx - 25) * 0.8) ** 2 < 15.0 ** 2
    path = write_stl(sphere, aff, tmp_path / "s.stl", "sphere")
    normals, tri = read_stl(path)
    assert mesh_volume_ml(tri) == pytest.approx(sphere.sum() * 2.5 * 0.64 / 1000, rel=0.03)
    centre = tri.reshape(-1, 3).mean(0)
    assert np.allclose(centre, [10 + 25 * 0.8, 20 + 25 * 0.8, 300 - 15 * 2.5], atol=0.5)
    outward = np.einsum("ij,ij->i", normals, tri.mean(1) - centre) > 0
    assert outward.mean() > 0.99


@pytest.mark.parametrize("shape,out_hw,scale,offset,cval", [
    ((3, 226, 306), (300, 400), (0.44, 0.6), (-30.3, -50.7), 0.0),  # up-sampling (from_network), outside both sides
    ((2, 300, 280), (224, 304), (1.9, 1.6), (-12.2, 20.5), -1024.0),  # down-sampling (to_network), box past the image
])
def test_resample_slices_equals_scipy_affine_transform(shape, out_hw, scale, offset, cval):
    """The separable torch resampling against the reference it replaced: scipy.ndimage.affine_transform, linear,
    constant mode, per slice."""
    from scipy import ndimage

    a = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    ref = np.stack([ndimage.affine_transform(s, np.array(scale), offset=offset, output_shape=out_hw, order=1,
                                             mode="constant", cval=cval, prefilter=False) for s in a])
    got = pp._resample_slices(a, out_hw, scale, offset, cval, chunk=2)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5
    assert np.array_equal(got == cval, ref == cval)  # the same samples fall outside the slice
    assert (ref == cval).any() and (ref != cval).any()


def test_resample_slices_of_a_flipped_view_and_an_interior_crop():
    """``slices`` of a negative-stride view (the canonical HU of a head-first series) and taps that read only an
    interior block of each slice give the values of resampling the copied slices whole."""
    from scipy import ndimage

    a = np.random.default_rng(6).normal(size=(7, 120, 140)).astype(np.float32)
    view, ks = a[::-1], np.array([0, 2, 3, 6])
    scale, offset = (0.3, 0.45), (40.2, 55.7)  # reads rows ~40-62 and columns ~55-82 only
    ref = np.stack([ndimage.affine_transform(view[k], np.array(scale), offset=offset, output_shape=(70, 60),
                                             order=1, mode="constant", cval=-5.0, prefilter=False) for k in ks])
    got = pp._resample_slices(view, (70, 60), scale, offset, -5.0, chunk=3, slices=ks)
    assert np.abs(got - ref).max() < 1e-5


@pytest.mark.parametrize("centre,radius", [((40, 60), 12.0), ((3, 300), 20.0), ((112, 152), 0.7)])
def test_above_threshold_region_keeps_every_voxel_of_the_mask(centre, radius):
    """Mapping back only the region ``above_threshold_region`` names gives the same mask as mapping back the
    whole body box, for blobs inside, at the edge and of one network pixel; nothing above the threshold ->
    None."""
    box = pp.Box(37, 301, -20, 341)  # wider than a 320-column image: the box reaches past the image
    shape = (3, 330, 320)
    region = pp.box_region(box, shape)
    yy, xx = np.mgrid[:pp.NET_SHAPE[0], :pp.NET_SHAPE[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    prob = np.stack([np.clip(1.0 - r / (2 * radius) + 0.02 * k, 0, 1) for k in range(3)]).astype(np.float32)
    full = np.zeros(shape, bool)
    full[:, region[0], region[1]] = pp.from_network(prob, box, shape, region) >= 0.5
    sub = pp.above_threshold_region(prob, 0.5, box, region)
    assert sub is not None and full.any()
    part = np.zeros(shape, bool)
    part[:, sub[0], sub[1]] = pp.from_network(prob, box, shape, sub) >= 0.5
    assert np.array_equal(part, full)
    assert (sub[0].stop - sub[0].start) * (sub[1].stop - sub[1].start) < 0.5 * full[0].size  # it does crop
    assert pp.above_threshold_region(prob * 0.49, 0.5, box, region) is None


def test_volume_check_against_the_icrp110_reference():
    """Liver reference (ICRP-110 table): F 1333 mL, M 1714 mL; range 1/3 to 3 x (F: 444-4000 mL)."""
    from operators.organ_segmentation.results import reference_volumes, volume_check

    ref = reference_volumes()["liver"]
    assert 1000 < ref["F"] < ref["M"] < 2500  # adult livers, the male larger
    big = volume_check("liver", 6100.0, "F", truncated=False)  # the Toshiba series' liver + mass
    assert big["result"] == "above" and "review" in big["note"]
    assert big["range_ml"] == pytest.approx([ref["F"] / 3, 3 * ref["F"]], abs=0.1)
    assert volume_check("liver", 1500.0, "F", truncated=False)["result"] == "within"
    assert volume_check("liver", 300.0, "F", truncated=False)["result"] == "below"
    part = volume_check("liver", 300.0, "F", truncated=True)  # the scan cuts the organ: small is expected
    assert part["result"] == "partial" and part["truncated_by_scan"] and "not judged" in part["note"]
    assert volume_check("liver", 1500.0, "F", truncated=True)["result"] == "within"  # cut, yet in range
    assert volume_check("liver", 4500.0, "M", truncated=False)["result"] == "within"  # 3 x 1714 = 5142
    unknown = volume_check("liver", 4500.0, None, truncated=False)  # both sexes: widest range
    assert unknown["result"] == "within" and unknown["range_ml"][1] == pytest.approx(3 * ref["M"], abs=0.1)
    assert volume_check("stomach", 5000.0, "F", truncated=False) is None  # distensible: not checked


def test_organ_results_carry_the_volume_check():
    from dataclasses import replace

    hu = np.zeros((20, 30, 30), np.float32)
    vol = CTVolume(hu, axial_affine((-10.0, 10.0, 10.0), (0.0, 0.0, 0.0)))  # 1 mL voxels
    vol = replace(vol, meta=replace(vol.meta, patient_sex="F"))
    labels = np.zeros(hu.shape, np.uint8)
    labels[2:18, 2:28, 2:28] = ORGAN_BY_NAME["liver"].id  # 16 x 26 x 26 mL = 10.8 L, inside the scan
    labels[0:5, 0:2, 0:2] = ORGAN_BY_NAME["kidneys"].id  # 20 mL, touches the first slice: cut by the scan
    labels[10:12, 28:30, 28:30] = ORGAN_BY_NAME["pancreas"].id  # 8 mL, away from the first and last slice
    status = {"liver": STATUS_SEGMENTED, "kidneys": STATUS_SEGMENTED, "pancreas": STATUS_SEGMENTED}
    res = organ_results(vol, labels, status)
    assert res["liver"]["volume_check"]["result"] == "above"
    assert res["kidneys"]["volume_check"]["result"] == "partial"  # 20 mL: below the range, but cut by the scan
    assert res["kidneys"]["volume_check"]["truncated_by_scan"] is True
    assert res["pancreas"]["volume_check"]["result"] == "below"  # whole organ in the scan, far too small
    # searched over slices 8..19: the pancreas's expected extent reaches the scan's last slice -> partly scanned
    res = organ_results(vol, labels, status, {"liver": [1, 18], "kidneys": [0, 6], "pancreas": [8, 19]})
    assert res["pancreas"]["volume_check"]["result"] == "partial"
    assert res["pancreas"]["volume_check"]["truncated_by_scan"]
    assert res["liver"]["volume_check"]["result"] == "above"  # "above" does not depend on coverage


def test_reference_volume_table_matches_the_icrp110_phantoms():
    """The committed table is what its generator computes from the ICRP-110 data (skipped without the data)."""
    from models.organ_segmentation.reference_volumes import reference_volumes as compute
    from models.phantoms import icrp110
    from operators.organ_segmentation.results import reference_volumes

    if not icrp110.available():
        pytest.skip("ICRP-110 data absent")
    assert compute() == reference_volumes()


def test_a_lens_takes_its_voxels_from_the_eye_it_lies_in():
    """Highest probability wins between organs, except inside a container (INSIDE: the lens in the eyeball): the
    lens takes voxels at or above its threshold from the more confident eye, the eye never takes them back, and
    an organ not nested in the eye (the brain) still loses to it."""
    eye, lens, brain = (ORGAN_BY_NAME[o].id for o in ("eyes", "lenses", "brain"))
    assert INSIDE == {"lenses": "eyes"}
    labels = np.zeros((1, 4, 4), np.uint8)
    best = np.zeros((1, 4, 4), np.uint8)
    region = (slice(0, 4), slice(0, 4))
    kc = np.array([0])
    _composite(labels, best, kc, region, np.full((1, 4, 4), 0.98, np.float32), 0.5, eye,
               nested_ids=(lens,))
    p_lens = np.zeros((1, 4, 4), np.float32)
    p_lens[0, 1:3, 1:3] = 0.6  # the lens, less sure than the eye
    p_lens[0, 0, 0] = 0.4  # below its threshold: stays eye
    _composite(labels, best, kc, region, p_lens, 0.5, lens, container_id=eye)
    assert (labels[0, 1:3, 1:3] == lens).all() and labels[0, 0, 0] == eye and (labels == lens).sum() == 4
    _composite(labels, best, kc, region, np.full((1, 4, 4), 0.99, np.float32), 0.5, eye, nested_ids=(lens,))
    assert (labels == lens).sum() == 4  # the eye does not take the lens back
    _composite(labels, best, kc, region, np.full((1, 4, 4), 0.7, np.float32), 0.5, brain)
    assert not (labels == brain).any()  # not nested: the more confident eye keeps its voxels
