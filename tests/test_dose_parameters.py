"""Dose parameters from real CT Radiation Dose SRs (../shared/data/rdsr: Siemens, GE, Toshiba, a Philips dose
screen) and from image headers. Expected values come from an independent plain-pydicom walk of each file
(every NUM item with the code in document order) and from the report's own accumulated DLP (sum rule)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from operators.common.dose_parameters import (
    dose_parameters,
    find_dose_reports,
    from_headers,
    match_event,
    read_dose_report,
)
from operators.common.errors import BadInputError
from operators.common.paths import shared_data_dir
from operators.common.volume import CTMetadata, CTVolume, axial_affine

RDSR_DIR = shared_data_dir() / "rdsr"
pytestmark = pytest.mark.skipif(not RDSR_DIR.exists(), reason=f"shared RDSR samples absent: {RDSR_DIR}")
SR_FILES = sorted(p for p in RDSR_DIR.glob("*.dcm") if "-SC-" not in p.name) if RDSR_DIR.exists() else []


def _nums(path, code):
    """All NUM values with concept ``code`` in document order, by a naive recursive walk."""
    out = []

    def walk(seq):
        for it in seq:
            cn = it.get("ConceptNameCodeSequence")
            if it.get("ValueType") == "NUM" and cn and cn[0].CodeValue == code and it.get("MeasuredValueSequence"):
                out.append(float(it.MeasuredValueSequence[0].NumericValue))
            if "ContentSequence" in it:
                walk(it.ContentSequence)

    walk(pydicom.dcmread(path).ContentSequence)
    return out


def test_all_dose_srs_parse_and_match_an_independent_walk():
    assert len(SR_FILES) >= 13
    for p in SR_FILES:
        rep = read_dose_report(p)
        assert [e.ctdivol_mgy for e in rep.events if e.ctdivol_mgy is not None] == _nums(p, "113830"), p.name
        assert [e.dlp_mgycm for e in rep.events if e.dlp_mgycm is not None] == _nums(p, "113838"), p.name
        assert [e.pitch for e in rep.events if e.pitch is not None] == _nums(p, "113828"), p.name
        # kVp per X-ray source (dual-source scanners report two per event)
        kvps = [s["kvp"] for e in rep.events for s in e.sources if s.get("kvp") is not None]
        assert kvps == _nums(p, "113733"), p.name
        total = _nums(p, "113813")
        assert rep.total_dlp_mgycm == total[0]
        n_events = _nums(p, "113812")
        assert len(rep.events) == int(n_events[0]), p.name


def test_total_dlp_is_the_sum_of_the_event_dlps():
    for p in SR_FILES:
        rep = read_dose_report(p)
        assert rep.sum_event_dlp_mgycm == pytest.approx(rep.total_dlp_mgycm, abs=0.02), p.name


def test_siemens_events_in_detail():
    rep = read_dose_report(RDSR_DIR / "CT-RDSR-Siemens-Multi-3.dcm")
    assert rep.sop_class_name == "X-Ray Radiation Dose SR Storage"
    topo, s1, s2 = rep.events
    assert not topo.is_tomographic and s1.is_tomographic and s2.is_tomographic
    assert (s2.kvp, s2.ctdivol_mgy, s2.dlp_mgycm) == tuple(
        [_nums(rep_path := RDSR_DIR / "CT-RDSR-Siemens-Multi-3.dcm", "113733")[2],
         _nums(rep_path, "113830")[2], _nums(rep_path, "113838")[2]])
    assert s2.scanning_length_mm == _nums(rep_path, "113825")[2]
    assert s2.ctdi_phantom_cm == 32 and s2.target_region == "Chest"
    assert s2.total_collimation_mm == _nums(rep_path, "113827")[2]
    # DLP ~ CTDIvol x scanning length (the exposed range is a little longer than the planned length)
    assert s2.dlp_mgycm == pytest.approx(s2.ctdivol_mgy * s2.scanning_length_mm / 10, rel=0.1)


def test_dual_source_events_report_both_tubes():
    rep = read_dose_report(RDSR_DIR / "CT-RDSR-Siemens_Flash-QA-DS.dcm")
    dual = [e for e in rep.events if e.n_sources == 2]
    assert dual and all(len(e.sources) == 2 for e in dual)
    assert all(e.kvp == e.sources[0]["kvp"] for e in dual)


def test_head_phantom_and_ge_enhanced_sr():
    rep = read_dose_report(RDSR_DIR / "CT-RDSR-GEPixelMed.dcm")
    assert {e.ctdi_phantom_cm for e in rep.events} == {16}
    esr = read_dose_report(RDSR_DIR / "CT-ESR-GE_VCT.dcm")  # GE writes TID 10011 as Enhanced SR
    assert esr.sop_class_name == "Enhanced SR Storage"
    assert {16, 32} <= {e.ctdi_phantom_cm for e in esr.events}


def test_secondary_capture_dose_screen_is_rejected_by_name():
    p = RDSR_DIR / "CT-SC-Philips_Brilliance16P.dcm"
    with pytest.raises(BadInputError, match=r"CT-SC-Philips_Brilliance16P\.dcm is not a CT Radiation Dose SR.*"
                                            r"Secondary Capture Image Storage"):
        read_dose_report(p)
    assert p not in find_dose_reports(RDSR_DIR)


def _vol(length_slices=48, kvp=120.0, ctdi=7.0, ma=None, part="CHEST"):
    meta = CTMetadata(kvp=kvp, ctdivol_mgy=ctdi, tube_current_ma=ma, body_part_examined=part)
    return CTVolume(np.zeros((length_slices, 8, 8), np.float32), axial_affine((5.0, 1.0, 1.0), (0, 0, 0)), meta)


def test_event_matching_and_fallback_to_headers():
    sc = RDSR_DIR / "CT-SC-Philips_Brilliance16P.dcm"
    siemens = RDSR_DIR / "CT-RDSR-Siemens-Multi-3.dcm"
    vol = _vol(48)  # 240 mm covered: the second spiral (238 mm) of the report
    dp = dose_parameters(vol, [sc, siemens])
    assert dp.dose_source == "rdsr" and dp.ctdivol_mgy == _nums(siemens, "113830")[2]
    assert any("Secondary Capture" in n for n in dp.notes)
    short = match_event(read_dose_report(siemens), _vol(18))  # 90 mm: the first spiral (92 mm)
    assert short.ctdivol_mgy == _nums(siemens, "113830")[1]
    ma = np.linspace(100, 300, 48)
    hdr = dose_parameters(_vol(48, ma=ma), [sc])
    assert hdr.dose_source == "header" and hdr.ctdivol_mgy == 7.0
    assert hdr.dlp_mgycm == pytest.approx(7.0 * 24.0)  # 48 slices x 5 mm
    assert hdr.mean_tube_current_ma == pytest.approx(200.0)
    assert from_headers(_vol(10, part="HEAD")).ctdi_phantom_cm == 16
    with pytest.raises(BadInputError, match="no CT Radiation Dose SR"):
        dose_parameters(None, [sc])


def test_dose_report_of_another_study_is_not_used():
    siemens = RDSR_DIR / "CT-RDSR-Siemens-Multi-3.dcm"
    vol = _vol(48)
    vol.meta.study_instance_uid = "1.2.3.4"
    dp = dose_parameters(vol, [siemens])
    assert dp.dose_source == "header" and any("another study" in n for n in dp.notes)
    vol.meta.study_instance_uid = str(pydicom.dcmread(siemens, stop_before_pixels=True).StudyInstanceUID)
    assert dose_parameters(vol, [siemens]).dose_source == "rdsr"
