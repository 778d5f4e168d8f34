"""DICOM writers (SEG, TID 1500 SR, RT Dose, encapsulated PDF) on the demo study: content, geometry and
``dciodvfy`` validation (no errors; the only accepted warning is named per object type)."""

from __future__ import annotations

import logging
import random

import numpy as np
import pydicom
import pytest
from _dicom_checks import dciodvfy, needs_dciodvfy

from operators.common.dicom_series import series_to_volume
from operators.common.labels import BODY_COMPOSITION, BODY_COMPOSITION_BY_NAME, ORGAN_BY_NAME, ORGANS, Code
from operators.common.provenance import code_version
from operators.common.volume import load_nifti
from operators.dicom_output import (
    DoseGrid,
    Evaluation,
    MeasurementGroup,
    Quantity,
    SourceSeries,
    build_seg,
    measurement_table,
    read_encapsulated_pdf,
    read_rt_dose,
    read_seg_label_map,
    render_text_pdf,
    to_volume_grid,
    write_encapsulated_pdf,
    write_measurement_report,
    write_organ_volume_report,
    write_rt_dose,
    write_seg,
)
from operators.dicom_output import codes as C


@pytest.fixture(scope="module")
def ct(demo_study):
    """CT volume of the demo study's axial series (ascending z; the files are head-first), its source headers
    and the ground-truth label maps re-indexed onto the volume grid."""
    paths = demo_study.series["axial"].paths
    vol = series_to_volume([pydicom.dcmread(p) for p in paths])
    organs, aff = load_nifti(demo_study.labels_dir / "organs.nii.gz")
    bc, aff_bc = load_nifti(demo_study.labels_dir / "body_composition.nii.gz")
    organs = to_volume_grid(organs, aff, vol.affine_lps, vol.shape).astype(np.uint8)
    bc = to_volume_grid(bc, aff_bc, vol.affine_lps, vol.shape).astype(np.uint8)
    return vol, SourceSeries.from_volume(vol), organs, bc


def _common_checks(ds, src: SourceSeries, modality: str):
    ref = src.first
    assert ds.Modality == modality
    assert ds.StudyInstanceUID == ref.StudyInstanceUID
    assert ds.SeriesInstanceUID not in (ref.SeriesInstanceUID, "")
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "AccessionNumber"):
        assert ds.get(kw) == ref.get(kw), kw
    assert ds.Manufacturer == "CorpusCT"
    versions = list(ds.SoftwareVersions) if ds["SoftwareVersions"].VM > 1 else [ds.SoftwareVersions]
    assert any(code_version() in v for v in versions), versions
    assert "not for clinical use" in ds.SeriesDescription.lower()
    assert len(ds.SeriesDescription) <= 64


def test_labels_are_reindexed_onto_the_volume_grid(ct, demo_study):
    vol, src, organs, _ = ct
    ph = demo_study.phantom
    assert src.first.SOPInstanceUID == vol.meta.sop_instance_uids[0]
    # the phantom (and its NIfTI) is head-first; the volume is feet-first: same voxels, reversed slices
    assert ph.ct.affine_lps[2, 2] < 0 < vol.affine_lps[2, 2]
    np.testing.assert_array_equal(organs, ph.organs[::-1])
    np.testing.assert_allclose(vol.hu, ph.ct.hu[::-1], atol=0.51)
    with pytest.raises(ValueError):
        to_volume_grid(organs[:-1], vol.affine_lps, vol.affine_lps, vol.shape)


# --- SEG ------------------------------------------------------------------------------------------------

@needs_dciodvfy
def test_seg_organs_content_geometry_and_dciodvfy(ct, tmp_path):
    import highdicom as hd

    vol, src, organs, _ = ct
    res = write_seg(src, organs, ORGANS, tmp_path / "organs_seg.dcm", algorithm_name="phantom ground truth",
                    model_versions={"phantom": "1"})
    errors, warnings = dciodvfy(res.path)
    assert not errors, errors
    assert not warnings, warnings

    ds = pydicom.dcmread(res.path)
    _common_checks(ds, src, "SEG")
    assert "phantom 1" in list(ds.SoftwareVersions)  # model versions beside the code version
    present = sorted(int(i) for i in np.unique(organs) if i)
    assert [s.label_id for s in res.segments] == present
    assert sorted(res.skipped) == sorted(lt.name for lt in ORGANS if lt.id not in present)
    assert ds.SegmentationType == "BINARY"
    by_id = {lt.id: lt for lt in ORGANS}
    for item, info in zip(ds.SegmentSequence, res.segments, strict=True):
        lt = by_id[info.label_id]
        assert int(item.SegmentNumber) == info.number
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == lt.code.value
        assert item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == lt.category.value
        assert item.TrackingID == lt.name and item.TrackingUID == info.tracking_uid
        assert list(item.RecommendedDisplayCIELabValue) == list(hd.color.CIELabColor.from_rgb(*lt.rgb).value)
        algo = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"  # Artificial Intelligence
        assert algo.AlgorithmVersion == code_version()
        assert item.SegmentAlgorithmType == "AUTOMATIC"

    # every frame lies on its source image: referenced SOP instance and position agree with that image
    src_by_uid = {d.SOPInstanceUID: d for d in src.datasets}
    for fg in ds.PerFrameFunctionalGroupsSequence:
        ref_uid = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose([float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient],
                                   [float(v) for v in src_by_uid[ref_uid].ImagePositionPatient], atol=1e-3)

    for match in ("sop", "position"):
        back, numbers = read_seg_label_map(res.path, vol, ORGANS, match=match)
        np.testing.assert_array_equal(back, organs)
        assert sorted(numbers.values()) == present


def test_seg_frames_follow_source_images_whatever_the_file_order(ct, demo_study, tmp_path):
    """The same study loaded from shuffled files gives the same frame -> source mapping."""
    vol, src, organs, _ = ct
    paths = list(demo_study.series["axial"].paths)
    random.Random(3).shuffle(paths)
    vol2 = series_to_volume([pydicom.dcmread(p) for p in paths])
    assert vol2.meta.sop_instance_uids == vol.meta.sop_instance_uids
    res = write_seg(vol2, organs, ORGANS, tmp_path / "seg.dcm", label_ids=[ORGAN_BY_NAME["liver"].id])
    assert [s.name for s in res.segments] == ["liver"]
    back, _ = read_seg_label_map(res.path, vol, ORGANS)
    np.testing.assert_array_equal(back == ORGAN_BY_NAME["liver"].id, organs == ORGAN_BY_NAME["liver"].id)


@needs_dciodvfy
def test_seg_body_composition_subset_and_errors(ct, tmp_path):
    vol, src, _, bc = ct
    ids = [BODY_COMPOSITION_BY_NAME[n].id for n in ("muscle", "subcutaneous_fat", "abdominal_visceral_fat")]
    res = write_seg(src, bc, BODY_COMPOSITION, tmp_path / "bc.dcm", label_ids=ids)
    assert [s.label_id for s in res.segments] == sorted(ids)
    errors, warnings = dciodvfy(res.path)
    assert not errors and not warnings, errors + warnings
    back, _ = read_seg_label_map(res.path, vol, BODY_COMPOSITION)
    np.testing.assert_array_equal(back, np.where(np.isin(bc, ids), bc, 0))
    with pytest.raises(ValueError, match="none of the requested"):
        build_seg(src, np.zeros_like(bc), BODY_COMPOSITION)
    with pytest.raises(ValueError, match="does not match"):
        build_seg(src, bc[:-1], BODY_COMPOSITION)


# --- SR -------------------------------------------------------------------------------------------------

@needs_dciodvfy
def test_sr_organ_volumes_reference_seg_segments(ct, demo_study, tmp_path):
    import highdicom as hd

    vol, src, organs, _ = ct
    seg = write_seg(src, organs, ORGANS, tmp_path / "seg.dcm")
    res = write_organ_volume_report(vol, organs, tmp_path / "sr.dcm", seg=seg, source=src,
                                    model_versions={"phantom": "1"})
    errors, warnings = dciodvfy(res.path)
    assert not errors, errors
    assert not warnings, warnings
    ds = pydicom.dcmread(res.path)
    _common_checks(ds, src, "SR")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = {r.ReferencedSOPInstanceUID for s in ds.CurrentRequestedProcedureEvidenceSequence
                for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert seg.sop_instance_uid in evidence and set(src.sop_instance_uids) <= evidence

    voxel_ml = abs(np.linalg.det(vol.affine_lps[:3, :3])) / 1000
    expected_ml = demo_study.phantom.summary()["organ_volumes_ml"]
    table = {g["tracking_id"]: g for g in measurement_table(res.path)}
    assert sorted(table) == sorted(s.name for s in seg.segments)
    for s in seg.segments:
        g = table[s.name]
        mask = organs == s.label_id
        vol_ml, unit = g["measurements"]["Volume"]
        assert unit == "ml" and vol_ml == pytest.approx(mask.sum() * voxel_ml, abs=0.01)
        assert vol_ml == pytest.approx(expected_ml[s.name], rel=1e-3, abs=0.06)  # phantom.json: 0.1 ml
        hu, unit = g["measurements"]["Mean Attenuation Coefficient"]
        assert unit == "[hnsf'U]" and hu == pytest.approx(float(vol.hu[mask].mean()), abs=0.06)
        assert g["segment"] == (seg.sop_instance_uid, s.number)
        assert g["tracking_uid"] == s.tracking_uid
        assert g["codes"]["Finding Site"] == ORGAN_BY_NAME[s.name].code.meaning
    # highdicom parses it as a TID 1500 report with one volumetric group per segment
    parsed = hd.sr.srread(res.path)
    groups = parsed.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(seg.segments)
    assert groups[0].referenced_segment.referenced_sop_instance_uid == seg.sop_instance_uid


@needs_dciodvfy
def test_sr_generic_groups_body_composition_body_parts_dose(ct, tmp_path):
    """The generic groups carry areas (cm2, cm2/m2, cm2/kg), body parts (coded and text), scan range (mm)
    and organ doses (mGy); all validate."""
    vol, src, _, _ = ct
    muscle = BODY_COMPOSITION_BY_NAME["muscle"]
    groups = [
        MeasurementGroup("l3_muscle", finding_type=muscle.code, finding_site=Code("122496007", "L3 vertebra"),
                         measurements=[Quantity(C.AREA, 152.4, "cm2"), Quantity(C.AREA, 55.1, "cm2/m2",
                                                                                 method=Code("10001", "Skeletal muscle index", "99CORPUSCT")),
                                       Quantity(C.AREA, 2.1, "cm2/kg")]),
        MeasurementGroup("body_parts", evaluations=[Evaluation(C.TARGET_REGION, ORGAN_BY_NAME["liver"].code),
                                                    Evaluation(C.TARGET_REGION, "upper abdomen, kidneys, mid abdomen")],
                         measurements=[Quantity(Code("20001", "Scan range superior z", "99CORPUSCT"), 960.0, "mm")]),
        MeasurementGroup("dose_liver", finding_site=ORGAN_BY_NAME["liver"].code,
                         measurements=[Quantity(C.ORGAN_DOSE, 12.34, "mGy")]),
    ]
    res = write_measurement_report(src, groups, tmp_path / "sr.dcm", description="CorpusCT body composition SR")
    errors, warnings = dciodvfy(res.path)
    assert not errors, errors
    # the only warnings: a private coding scheme (declared in CodingSchemeIdentificationSequence, as DICOM
    # requires) is not a defined term dciodvfy knows
    assert all("<99CORPUSCT>" in w for w in warnings), warnings
    ds = pydicom.dcmread(res.path)
    assert [i.CodingSchemeDesignator for i in ds.CodingSchemeIdentificationSequence] == ["99CORPUSCT"]
    table = {g["tracking_id"]: g for g in measurement_table(res.path)}
    m = table["l3_muscle"]["measurements"]
    assert (m["Area [cm2]"], m["Area [cm2/m2]"], m["Area [cm2/kg]"]) == ((152.4, "cm2"), (55.1, "cm2/m2"), (2.1, "cm2/kg"))
    assert table["body_parts"]["codes"]["Target Region"] == "Liver"
    assert table["body_parts"]["evaluations"]["Target Region"] == "upper abdomen, kidneys, mid abdomen"
    assert table["dose_liver"]["measurements"]["Organ Dose"] == (12.34, "mGy")
    with pytest.raises(ValueError, match="unique"):
        write_measurement_report(src, groups + groups[:1], tmp_path / "x.dcm")


# --- RT Dose --------------------------------------------------------------------------------------------

@needs_dciodvfy
def test_rt_dose_on_ct_grid_and_coarse_head_first_grid(ct, tmp_path):
    vol, src, _, _ = ct
    dose = (0.02 * np.clip(vol.hu + 1000.0, 0, None) / 1000.0).astype(np.float32)
    res = write_rt_dose(dose, vol.affine_lps, src, tmp_path / "dose.dcm", n_histories=10**8,
                        uncertainty_percent=1.5, model_versions={"mc_dose": "0.1"})
    errors, warnings = dciodvfy(res.path)
    assert not errors, errors
    # the only warning: this dciodvfy (2022) does not know the defined term PLAN_OVERVIEW yet
    assert all("PLAN_OVERVIEW" in w for w in warnings), warnings
    ds = pydicom.dcmread(res.path)
    _common_checks(ds, src, "RTDOSE")
    assert ds.FrameOfReferenceUID == src.frame_of_reference_uid
    assert (ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == ("GY", "PHYSICAL", "PLAN_OVERVIEW")
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert offsets[0] == 0 and np.all(np.diff(offsets) > 0) and len(offsets) == vol.shape[0]
    assert "1e+08 histories" in ds.ImageComments and "1.5%" in ds.ImageComments
    back, aff = read_rt_dose(ds)
    np.testing.assert_allclose(aff, vol.affine_lps, atol=1e-4)
    assert np.abs(back - dose).max() <= float(ds.DoseGridScaling) * 0.51 + 1e-9
    assert float(ds.DoseGridScaling) * 65535 >= dose.max()

    # a coarser grid given head-first: frames are written feet->head, the world positions are unchanged
    coarse = dose[::-2, ::2, ::2]
    a = vol.affine_lps.copy()
    a[:3, :3] = a[:3, :3] * 2
    a[:3, 2] *= -1
    a[:3, 3] = vol.index_to_lps([0, 0, vol.shape[0] - 1])[0]
    r2 = write_rt_dose(DoseGrid(coarse, a).dose_gy, a, src, tmp_path / "coarse.dcm")
    errors, _ = dciodvfy(r2.path)
    assert not errors, errors
    back2, aff2 = read_rt_dose(r2.path)
    np.testing.assert_allclose(back2[::-1], coarse, atol=float(pydicom.dcmread(r2.path).DoseGridScaling))
    np.testing.assert_allclose(aff2[:3, 3], a[:3, 3] + a[:3, 2] * (coarse.shape[0] - 1), atol=1e-3)
    with pytest.raises(ValueError):
        write_rt_dose(-dose, vol.affine_lps, src, tmp_path / "neg.dcm")


# --- PDF ------------------------------------------------------------------------------------------------

@needs_dciodvfy
def test_encapsulated_pdf(ct, tmp_path):
    from pypdf import PdfReader

    _, src, _, _ = ct
    pdf = render_text_pdf("CorpusCT test report", ["Liver volume: 1520 ml", "Spleen volume: 210 ml"])
    assert len(PdfReader(__import__("io").BytesIO(pdf)).pages) == 1
    res = write_encapsulated_pdf(pdf, src, tmp_path / "report.dcm", title="CorpusCT test report")
    errors, warnings = dciodvfy(res.path)
    assert not errors and not warnings, errors + warnings
    ds = pydicom.dcmread(res.path)
    _common_checks(ds, src, "DOC")
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert read_encapsulated_pdf(ds) == pdf
    assert int(ds.EncapsulatedDocumentLength) == len(pdf)
    with pytest.raises(ValueError, match="not a PDF"):
        write_encapsulated_pdf(b"hello", src, tmp_path / "x.dcm")


def test_writers_never_log_patient_identifiers(ct, tmp_path, caplog):
    vol, src, organs, _ = ct
    caplog.set_level(logging.DEBUG)
    seg = write_seg(src, organs, ORGANS, tmp_path / "s.dcm")
    write_organ_volume_report(vol, organs, tmp_path / "r.dcm", seg=seg, source=src)
    write_rt_dose(np.ones(vol.shape, np.float32), vol.affine_lps, src, tmp_path / "d.dcm")
    write_encapsulated_pdf(render_text_pdf("t", ["x"]), src, tmp_path / "p.dcm")
    text = caplog.text
    ref = src.first
    for value in (str(ref.PatientName), str(ref.PatientID), str(ref.PatientName).split("^")[-1]):
        assert value and value not in text
    if ref.get("PatientBirthDate"):
        assert str(ref.PatientBirthDate) not in text


def test_single_component_patient_name_never_reaches_warnings(ct, tmp_path):
    """highdicom warns about single-component person names and quotes the name: that must not surface."""
    import warnings

    vol, _, organs, _ = ct
    src = SourceSeries.from_volume(vol)
    for ds in src.datasets:
        ds.PatientName = "ZXQ-00249"
    with warnings.catch_warnings(record=True) as caught:
        seg = write_seg(src, organs, ORGANS, tmp_path / "s.dcm")
        write_organ_volume_report(vol, organs, tmp_path / "r.dcm", seg=seg, source=src)
    assert pydicom.dcmread(tmp_path / "s.dcm").PatientName == "ZXQ-00249"  # copied unchanged
    assert not [w for w in caught if "ZXQ-00249" in str(w.message)]


def test_source_series_errors(ct):
    from operators.common.errors import BadInputError
    from operators.common.volume import CTVolume

    vol, _, _, _ = ct
    bare = CTVolume(vol.hu, vol.affine_lps)
    with pytest.raises(BadInputError, match="source files"):
        SourceSeries.from_volume(bare)
