"""Anchor post-process rules on a hand-built label map (5 mm voxels, feet-first storage): a rule removes a false
positive that violates it and leaves the true organ intact; an organ whose anchor is absent is left unchanged;
connected-component cleanup of paired organs; independence of the storage orientation."""

from __future__ import annotations

import numpy as np
import pytest

from operators.anchor_postprocess.operator import run_anchor_postprocess
from operators.anchor_postprocess.rules import DEFAULT_ENABLED, keep_largest_components, postprocess
from operators.common.labels import ORGAN_BY_NAME
from operators.common.volume import CTVolume, axial_affine
from operators.organ_segmentation.inference import OrganSegmentation

ID = {n: lab.id for n, lab in ORGAN_BY_NAME.items()}
AFF = axial_affine((5.0, 5.0, 5.0), (-200.0, -150.0, 0.0))  # slice k at z = 5 k mm (k = 0 inferior)


def _box(lab, name, k, j, i):
    lab[k[0]:k[1], j[0]:j[1], i[0]:i[1]] = ID[name]


def body() -> np.ndarray:
    """Femoral heads (z 50-80 mm) < bladder < kidneys (250-310) < liver / spleen (300-400) < lungs (380-550).
    Column index i grows towards the patient's left (LPS x)."""
    lab = np.zeros((120, 60, 80), np.uint8)
    _box(lab, "femoral_heads", (10, 16), (25, 32), (12, 19))
    _box(lab, "femoral_heads", (10, 16), (25, 32), (61, 68))
    _box(lab, "urinary_bladder", (14, 24), (15, 24), (34, 46))
    _box(lab, "kidneys", (50, 62), (35, 45), (18, 27))
    _box(lab, "kidneys", (51, 63), (35, 45), (53, 62))
    _box(lab, "adrenal_glands", (62, 65), (36, 41), (20, 25))
    _box(lab, "adrenal_glands", (63, 66), (36, 41), (55, 60))
    _box(lab, "liver", (60, 80), (10, 35), (8, 40))
    _box(lab, "gallbladder", (60, 64), (12, 18), (28, 34))
    _box(lab, "spleen", (64, 74), (25, 40), (58, 68))
    _box(lab, "lungs", (76, 110), (10, 45), (8, 36))
    _box(lab, "lungs", (76, 110), (10, 45), (44, 72))
    return lab


def test_rule_removes_blob_and_keeps_organ():
    lab = body()
    truth = lab == ID["spleen"]
    lab[2:5, 30:34, 60:64] = ID["spleen"]  # spleen voxels below the femoral heads: impossible
    out, rep = postprocess(lab, AFF, components=False)
    assert np.array_equal(out == ID["spleen"], truth)
    assert rep["spleen"]["rule_removed_voxels"] == 3 * 4 * 4
    assert rep["spleen"]["bounds_mm"]["z_min"] == pytest.approx(75.0)  # femoral heads top (slice 15)


def test_side_rules():
    lab = body()
    truth = lab == ID["gallbladder"]
    lab[61:63, 20:24, 66:72] = ID["gallbladder"]  # by the spleen, left of its centroid
    lab[66:70, 26:30, 10:14] = ID["spleen"]  # on the right, under the liver
    out, _ = postprocess(lab, AFF, components=False)
    assert np.array_equal(out == ID["gallbladder"], truth)
    assert np.array_equal(out == ID["spleen"], body() == ID["spleen"])


def test_liver_component_reaches_the_lung_bases():
    """A "liver" blob in the pelvis larger than the true liver (a big homogeneous mass the model labels liver) does
    not win the liver's connected-component cleanup: the kept component must reach up to the lung bases. Without
    the lungs in the label map there is nothing to tell them apart, and the largest component is kept."""
    lab = body()
    truth = lab == ID["liver"]
    lab[24:48, 8:40, 20:60] = ID["liver"]  # z 120-235 mm, 3.8 x the true liver, separate from it
    assert (lab == ID["liver"]).sum() > 3 * truth.sum()
    out, rep = postprocess(lab, AFF, enabled={"liver": True})
    assert np.array_equal(out == ID["liver"], truth)
    assert rep["liver"]["component_top_at_least_mm"] == pytest.approx(380.0 - 30.0)  # lungs bottom (slice 76) - 30
    no_lungs = np.where(lab == ID["lungs"], 0, lab)
    out, _ = postprocess(no_lungs, AFF, enabled={"liver": True})
    assert (out == ID["liver"]).sum() == 24 * 32 * 40


def test_a_spleen_split_in_two_keeps_both_parts():
    """A model that misses a band of the spleen leaves an upper and a lower part at the same place, overlapping in z:
    both are spleen. A third, small blob beside it goes."""
    lab = body()
    lab[lab == ID["spleen"]] = 0
    _box(lab, "spleen", (70, 76), (25, 40), (58, 68))  # upper part, z 350-375 mm
    # lower part, 2 voxels to the left, z 320-355 mm: overlapping the upper part's z, and its top within 30 mm of
    # the lungs' bottom (380 mm) like every component the liver and spleen keep
    _box(lab, "spleen", (64, 72), (25, 40), (70, 76))
    truth = lab == ID["spleen"]
    lab[72:74, 5:7, 74:76] = ID["spleen"]  # small blob in front
    out, rep = postprocess(lab, AFF, enabled={"spleen": True})
    assert np.array_equal(out == ID["spleen"], truth)
    assert rep["spleen"]["components_removed_voxels"] == 2 * 2 * 2


def test_adrenals_above_kidneys_and_pelvic_blob():
    lab = body()
    truth = lab == ID["adrenal_glands"]
    lab[18:20, 40:43, 20:23] = ID["adrenal_glands"]  # in the pelvis, far below the kidneys
    out, rep = postprocess(lab, AFF, components=False)
    assert np.array_equal(out == ID["adrenal_glands"], truth)
    assert rep["adrenal_glands"]["rule_removed_voxels"] == 2 * 3 * 3


def test_head_organs_are_bounded_by_the_eyes():
    """A head scan holds no trunk anchor: the eyes bound the lenses, optic nerves and pituitary gland (a "lens" at
    the level of the brain, 60 mm above the eyes, a "lens" between the orbits and a "pituitary" in the neck go), and
    the oesophagus and trachea stay 40 mm below the eyes; the true organs beside the eyes stay."""
    lab = np.zeros((60, 50, 60), np.uint8)  # z 0-295 mm
    _box(lab, "brain", (36, 58), (10, 45), (10, 50))
    _box(lab, "eyes", (30, 36), (2, 8), (14, 20))  # z 150-175 mm
    _box(lab, "eyes", (30, 36), (2, 8), (40, 46))
    _box(lab, "lenses", (32, 34), (1, 3), (16, 18))
    _box(lab, "optic_nerves", (32, 34), (8, 14), (16, 18))
    _box(lab, "pituitary_gland", (31, 33), (20, 22), (29, 31))
    _box(lab, "esophagus", (0, 10), (30, 34), (28, 32))
    truth = lab.copy()
    _box(lab, "lenses", (46, 48), (46, 48), (52, 54))  # z 230-235: at the level of the brain
    _box(lab, "pituitary_gland", (10, 12), (30, 32), (20, 22))  # z 50-55: in the neck
    _box(lab, "esophagus", (33, 35), (2, 6), (25, 30))  # between the orbits
    _box(lab, "lenses", (32, 34), (2, 4), (29, 31))  # at the eyes' level, 45 mm from either eye: not in an eyeball
    out, rep = postprocess(lab, AFF, components=False)
    for organ in ("lenses", "optic_nerves", "pituitary_gland", "esophagus", "eyes", "brain"):
        assert np.array_equal(out == ID[organ], truth == ID[organ]), organ
    assert rep["lenses"]["bounds_mm"] == {"z_min": pytest.approx(140.0), "z_max": pytest.approx(185.0),
                                          "near_eyes": pytest.approx(10.0)}
    assert rep["esophagus"]["bounds_mm"]["z_max"] == pytest.approx(110.0)


def test_a_lens_nowhere_near_the_eyes_is_removed_whole():
    """Unlike other organs, a lens mask wholly outside its bound is dropped (the eyes are the more reliable mask):
    the operator then reports the lenses "not found"; without eyes the lens is left alone."""
    lab = np.zeros((60, 50, 60), np.uint8)
    _box(lab, "eyes", (30, 36), (2, 8), (14, 20))
    _box(lab, "eyes", (30, 36), (2, 8), (40, 46))
    _box(lab, "lenses", (32, 34), (20, 22), (29, 31))  # the eyes' level, 60 mm behind them
    out, rep = postprocess(lab, AFF, components=False)
    assert not (out == ID["lenses"]).any() and rep["lenses"]["rule_removed_voxels"] == 8
    lab[lab == ID["eyes"]] = 0
    out, _ = postprocess(lab, AFF, components=False)
    assert (out == ID["lenses"]).sum() == 8


def test_absent_anchor_leaves_organ_unchanged():
    lab = body()
    lab[np.isin(lab, [ID["femoral_heads"], ID["lungs"]])] = 0  # no anchors below / above the spleen
    lab[2:5, 30:34, 60:64] = ID["spleen"]
    before = lab == ID["spleen"]
    out, rep = postprocess(lab, AFF, components=False)
    assert np.array_equal(out == ID["spleen"], before)  # not emptied, not trimmed
    assert set(rep["spleen"]["skipped_anchors"]) == {"femoral_heads", "lungs"}
    assert "z_min" not in rep["spleen"]["bounds_mm"]


def test_rule_never_empties_an_organ():
    lab = body()
    lab[lab == ID["spleen"]] = 0
    lab[2:6, 30:36, 60:66] = ID["spleen"]  # the only spleen voxels violate the rule: anchor more likely wrong
    out, rep = postprocess(lab, AFF, components=False)
    assert (out == ID["spleen"]).sum() == 4 * 6 * 6
    assert "kept_because" in rep["spleen"]


def test_disabled_organ_untouched():
    lab = body()
    lab[2:5, 30:34, 60:64] = ID["spleen"]
    out, _ = postprocess(lab, AFF, enabled={"spleen": False})
    assert np.array_equal(out == ID["spleen"], lab == ID["spleen"])


def test_component_cleanup_of_paired_organs():
    lab = body()
    truth = lab == ID["kidneys"]
    lab[56:58, 20:22, 38:40] = ID["kidneys"]  # a small speck between the kidneys
    lab[90:98, 46:54, 40:48] = ID["kidneys"]  # a large blob in the chest (47 % of a kidney), far above
    out, rep = postprocess(lab, AFF, rules={})
    assert np.array_equal(out == ID["kidneys"], truth)
    assert rep["kidneys"]["components_removed_voxels"] == 2 * 2 * 2 + 8 * 8 * 8
    m = np.zeros((20, 20, 20), bool)
    m[2:6, 2:6, 2:6] = True
    m[2:6, 10:14, 10:14] = True
    m[15:18, 15:19, 15:19] = True  # 75 % of the others, at another level: not the pair
    kept = keep_largest_components(m, 2, z_axis=0)
    assert kept[2:6].sum() == 128 and not kept[15:19].any()


def test_storage_orientation_does_not_matter():
    lab = body()
    lab[2:5, 30:34, 60:64] = ID["spleen"]
    lab[18:20, 40:43, 20:23] = ID["adrenal_glands"]
    out, _ = postprocess(lab, AFF)
    head_first = axial_affine((-5.0, 5.0, 5.0), (-200.0, -150.0, 5.0 * 119))  # same patient, slices reversed
    out_hf, _ = postprocess(lab[::-1], head_first)
    assert np.array_equal(out_hf[::-1], out)


def test_operator_function_updates_status():
    lab = body()
    lab[lab == ID["gallbladder"]] = 0
    lab[2:5, 30:34, 60:64] = ID["gallbladder"]
    lab[5:8, 30:34, 60:64] = ID["gallbladder"]
    lab[20, 30, 5] = ID["gallbladder"]  # a second, tiny component: the cleanup removes it
    vol = CTVolume(np.zeros(lab.shape, np.float32), AFF)
    seg = OrganSegmentation(lab, {"gallbladder": "segmented", "spleen": "segmented"})
    _, out = run_anchor_postprocess(vol, seg)
    assert out.status == {"gallbladder": "segmented", "spleen": "segmented"}
    assert (out.labels == ID["gallbladder"]).sum() == 6 * 4 * 4
    # the report lists the organs present that the defaults post-process
    assert set(out.postprocess_report) == {o for o in ("gallbladder", "spleen") if DEFAULT_ENABLED[o]}
    assert "gallbladder" in out.postprocess_report


def test_disabled_anchor_keeps_voxels_but_not_its_stray_extent():
    """kidneys off (as by default): its voxels stay, but a stray kidney blob in the chest does not lift the
    adrenal bound (kidneys top + 40 mm), so an adrenal false positive up there is still removed."""
    lab = body()
    truth_adrenals = lab == ID["adrenal_glands"]
    lab[92:95, 46:49, 40:43] = ID["kidneys"]  # stray kidney voxels at z 460-470 mm
    lab[90:92, 20:23, 40:43] = ID["adrenal_glands"]  # adrenal voxels at z 450 mm: far above the real kidneys
    out, rep = postprocess(lab, AFF, enabled={"kidneys": False})
    assert np.array_equal(out == ID["kidneys"], lab == ID["kidneys"])
    assert np.array_equal(out == ID["adrenal_glands"], truth_adrenals)
    assert rep["adrenal_glands"]["bounds_mm"]["z_max"] == pytest.approx(5.0 * 62 + 40)


def test_untrusted_anchor_counts_as_absent():
    lab = body()
    lab[2:5, 30:34, 60:64] = ID["spleen"]  # below the femoral heads
    out, rep = postprocess(lab, AFF, components=False, anchors=("liver", "lungs", "kidneys"))
    assert np.array_equal(out == ID["spleen"], lab == ID["spleen"])
    assert "femoral_heads" in rep["spleen"]["skipped_anchors"] and "z_max" in rep["spleen"]["bounds_mm"]
