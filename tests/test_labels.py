"""Consistency of the label tables (they are data that every model, writer and report relies on)."""

import pytest

from operators.common import labels as L


@pytest.mark.parametrize("table, n", [(L.ORGANS, 23), (L.BODY_COMPOSITION, 7), (L.BODY_PARTS, 24)])
def test_tables_have_paper_sizes_and_unique_ids_names(table, n):
    assert len(table) == n
    assert [x.id for x in table] == list(range(1, n + 1))
    assert len({x.name for x in table}) == n


def test_organ_set_is_the_papers_23():
    expected = {"liver", "heart", "pancreas", "bones", "kidneys", "spleen", "urinary_bladder", "esophagus",
                "femoral_heads", "lungs", "spinal_cord", "aorta", "gallbladder", "adrenal_glands",
                "inferior_vena_cava", "colon", "rectum", "small_intestine", "stomach", "thymus", "gi_tract",
                "eyes", "brain"}
    assert {o.name for o in L.ORGANS} == expected


def test_codes_are_snomed_numeric_and_colours_valid():
    for lab in (*L.ORGANS, *L.BODY_COMPOSITION):
        assert lab.code.scheme == "SCT" and lab.code.value.isdigit()
        assert all(0 <= c <= 255 for c in lab.rgb)


def test_body_part_bounds_use_known_landmarks_in_head_to_feet_order():
    order = {name: i for i, name in enumerate(L.LANDMARKS)}
    for bp in L.BODY_PARTS:
        if bp.inferior is None:
            assert bp.name == "arms"
            continue
        lo, hi = bp.inferior[0], bp.superior[0]
        assert lo in order and hi in order, bp.name
        # the inferior landmark lies further towards the feet (later in LANDMARKS) or is the same one
        assert order[lo] >= order[hi], bp.name


def _adult_landmarks():
    # A plausible adult (z in mm, superior positive), ordered as LANDMARKS.
    z = [1700, 1610, 1575, 1560, 1540, 1500, 1480, 1460, 1445, 1440, 1430, 1380, 1330, 1320, 1300, 1270,
         1250, 1230, 1200, 1190, 1120, 1110, 1080, 1050, 960, 940, 900, 880, 500, 80, 0]
    assert len(z) == len(L.LANDMARKS)
    return dict(zip(L.LANDMARKS, map(float, z), strict=True))


def test_body_parts_per_slice_follows_landmarks():
    lm = _adult_landmarks()
    z = [1650.0, 1300.0, 1150.0, 920.0, 300.0, 20.0]
    parts = L.body_parts_per_slice(z, lm, arms_present=[False, True, True, False, False, False])
    assert "brain" in parts[0] and "pelvis" not in parts[0]
    assert {"heart", "lower_thorax", "arms"} <= set(parts[1])
    assert {"kidneys", "upper_abdomen"} <= set(parts[2]) and "brain" not in parts[2]
    assert {"pelvis", "hips"} <= set(parts[3])
    assert parts[4] == ["lower_leg"]
    assert parts[5] == ["ankle_foot"]


def test_interval_unknown_when_landmark_missing():
    lm = _adult_landmarks()
    del lm["carina"]
    assert L.body_part_interval_mm(L.BODY_PART_BY_NAME["upper_thorax"], lm) is None
    assert L.body_part_interval_mm(L.BODY_PART_BY_NAME["brain"], lm) == (lm["skull_base"], lm["vertex"])


def test_extra_organs_continue_the_id_space():
    assert [o.id for o in L.ORGANS_EXTRA] == [24, 25, 26, 27]
    assert [o.name for o in L.ORGANS_EXTRA] == ["lenses", "optic_nerves", "pituitary_gland", "trachea"]
    assert L.ALL_ORGANS == L.ORGANS + L.ORGANS_EXTRA
    assert len({o.name for o in L.ALL_ORGANS}) == len(L.ALL_ORGANS) == 27
    assert set(L.ORGAN_BY_NAME) == {o.name for o in L.ALL_ORGANS}
    assert {o.code.value for o in L.ORGANS_EXTRA} == {"78076003", "18234004", "56329008", "44567001"}
    for lab in L.ORGANS_EXTRA:
        assert lab.code.scheme == "SCT" and lab.code.value.isdigit() and all(0 <= c <= 255 for c in lab.rgb)


def test_organ_mask_takes_the_union_for_container_organs():
    import numpy as np

    eyes, lenses, liver = (L.ORGAN_BY_NAME[n].id for n in ("eyes", "lenses", "liver"))
    lab = np.array([[0, eyes, lenses], [liver, eyes, 0]], np.uint8)
    np.testing.assert_array_equal(L.organ_mask(lab, "eyes"), [[False, True, True], [False, True, False]])
    np.testing.assert_array_equal(L.organ_mask(lab, "lenses"), lab == lenses)  # the contained organ alone
    np.testing.assert_array_equal(L.organ_mask(lab, "liver"), lab == liver)
    assert L.organ_ids("eyes") == (eyes, lenses)
    with pytest.raises(KeyError, match="unknown organ"):
        L.organ_mask(lab, "appendix")
