"""The whole-body app end to end: on the demo study (every section it runs is in the report and results.json,
DICOM outputs pass dciodvfy, the report names no patient) and on a head-only scan (no waist: body composition
says "not in field of view", everything else still runs)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pydicom
import pytest
from _dicom_checks import dciodvfy, needs_dciodvfy
from orthanc_fixture import PYTHON, orthanc_factory  # noqa: F401 - fixture

from operators.common.paths import REPO_ROOT

APP = REPO_ROOT / "apps" / "whole_body"


def _run(dicom_dir, out, env=None):
    r = subprocess.run([sys.executable, str(APP), "-i", str(dicom_dir), "-o", str(out)], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _pdf_text(path) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages]


@needs_dciodvfy
def test_whole_body_app_on_demo_study(demo_study, tmp_path):
    out = tmp_path / "out"
    r = _run(demo_study.dicom_dir, out)
    for name in ("results.json", "selection_report.json", "report.html", "report.pdf", "report_pdf.dcm",
                 "range_sr.dcm", "body_composition_seg.dcm", "body_composition_sr.dcm", "body_composition.png",
                 "organs_seg.dcm", "organs.png", "organ_dose_sr.dcm"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert res["app"] == "whole_body"
    assert sorted(res["outputs"]) == sorted(p.name for p in out.iterdir())  # it lists exactly what was written
    assert res["sections"] == {"scan": "present", "organs": "present", "body_composition": "present",
                               "organ_dose": "present", "provenance": "present"}
    # an abdomen scan: the liver is segmented near its true volume, the brain is out of the field of view
    import numpy as np

    from operators.common.labels import ORGAN_BY_NAME
    from operators.common.volume import load_nifti

    truth, aff = load_nifti(demo_study.labels_dir / "organs.nii.gz")
    liver_true_ml = float((truth == ORGAN_BY_NAME["liver"].id).sum()) * abs(np.linalg.det(aff[:3, :3])) / 1000
    organs = res["organs"]["organs"]
    assert organs["liver"]["status"] == "segmented"
    assert abs(organs["liver"]["volume_ml"] - liver_true_ml) < 0.3 * liver_true_ml
    assert organs["brain"]["status"] == "not in field of view"
    # organ doses: the liver's network dose is of the order of CTDIvol (an abdomen scan: 0.5-3 x CTDIvol)
    dose = res["organ_dose"]
    assert dose["organ_doses_mgy"]["liver"]["method"] == "network"
    assert 0.5 * dose["ctdivol_mgy"] < dose["organ_doses_mgy"]["liver"]["dose"] < 3 * dose["ctdivol_mgy"]
    assert res["body_composition"]["status"] == "complete"
    assert res["range"]["scan_range_icrp110_cm"]["start"] < res["range"]["scan_range_icrp110_cm"]["end"]
    axial = demo_study.series["axial"]
    assert res["source"]["series_instance_uid"] == axial.series_instance_uid
    assert {"graynet", "body_composition"} <= set(res["provenance"]["models"])
    # every operator's compute time, the intake included
    assert {"graynet_range", "body_composition", "body_composition_seg_writer", "body_composition_sr_writer",
            "range_sr_writer", "report", "study_loader", "series_selector", "series_to_volume"} <= set(res["timing_s"])
    assert res["timing_s"]["body_composition"] > 0
    # DICOM outputs valid; the encapsulated PDF is the report and references the source images
    for name in ("report_pdf.dcm", "range_sr.dcm", "body_composition_seg.dcm", "body_composition_sr.dcm",
                 "organs_seg.dcm", "organ_dose_sr.dcm"):
        errors, _ = dciodvfy(out / name)
        assert not errors, (name, errors)
    ds = pydicom.dcmread(out / "report_pdf.dcm")
    assert ds.Modality == "DOC"
    src = pydicom.dcmread(axial.paths[0])
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    refs = {it.ReferencedSOPInstanceUID for it in ds.SourceInstanceSequence}
    assert refs == {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in axial.paths}
    assert bytes(ds.EncapsulatedDocument)[:int(ds.EncapsulatedDocumentLength)] == (out / "report.pdf").read_bytes()
    # the report: sections present or noted, not for clinical use on every page, no patient identifiers
    html = (out / "report.html").read_text()
    pages = _pdf_text(out / "report.pdf")
    assert all("not for clinical use" in p.lower() for p in pages)
    assert "not run" not in html and "Skeletal muscle index SMI" in html
    idents = [str(src.PatientName), str(src.PatientID), *str(src.PatientName).split("^")]
    for text in (html, "\n".join(pages), (out / "results.json").read_text(), r.stderr):
        for value in idents:
            assert value not in text, "patient identifier in the report, results or log"


def test_whole_body_app_on_head_only_scan(tmp_path):
    """No waist in the scan: body composition reports not in field of view, the range, writers and report run."""
    from models.phantoms import PhantomParams, generate_phantom, write_demo_study

    ph = generate_phantom(PhantomParams(seed=5, sex="F", region="head", matrix=96, slice_thickness_mm=5.0))
    study = write_demo_study(ph, tmp_path / "study")
    out = tmp_path / "out"
    _run(study.dicom_dir, out)
    res = json.loads((out / "results.json").read_text())
    assert res["body_composition"]["status"] == "not_evaluable" and res["body_composition"]["waist"] is None
    assert res["sections"]["body_composition"].startswith("waist not in field of view")
    assert res["sections"]["scan"] == "present"
    assert "head" in " ".join(res["range"]["covered_body_parts"]) or "brain" in res["range"]["covered_body_parts"]
    for name in ("range_sr.dcm", "body_composition_seg.dcm", "body_composition_sr.dcm", "report_pdf.dcm"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert "waist not in field of view" in html
    assert "waist not in field of view" in "\n".join(_pdf_text(out / "report.pdf"))


def test_pacs_destination_is_off_by_default_and_configurable(monkeypatch):
    from apps.whole_body.app import app_configuration, pacs_destination

    monkeypatch.delenv("CORPUSCT_PACS_HOST", raising=False)
    cfg = app_configuration()
    assert "pacs" in cfg and pacs_destination(cfg) is None
    dest = pacs_destination({"pacs": {"host": "127.0.0.1", "port": 11112, "ae_title": "ORTHANC"}})
    assert (dest.host, dest.port, dest.ae_title) == ("127.0.0.1", 11112, "ORTHANC")
    monkeypatch.setenv("CORPUSCT_PACS_HOST", "pacs.example")
    monkeypatch.setenv("CORPUSCT_PACS_PORT", "4242")
    assert str(pacs_destination(cfg)).startswith("ANY-SCP@pacs.example:4242")


@pytest.mark.parametrize("bad", [{"pacs": {"host": "h", "port": 70000}}, {"pacs": {"host": "h", "ae_title": "X" * 17}}])
def test_pacs_destination_rejects_bad_configuration(bad, monkeypatch):
    from apps.whole_body.app import pacs_destination

    monkeypatch.delenv("CORPUSCT_PACS_HOST", raising=False)
    with pytest.raises(ValueError):
        pacs_destination(bad)


@pytest.mark.slow
def test_whole_body_app_sends_its_dicom_results_to_a_pacs(orthanc_factory, tmp_path):  # noqa: F811
    """With a PACS configured (environment), the SR, SEG and encapsulated-PDF results reach Orthanc."""
    from models.phantoms import PhantomParams, generate_phantom, write_demo_study

    study = write_demo_study(generate_phantom(PhantomParams(seed=6, region="head", matrix=64)), tmp_path / "study")
    pacs = orthanc_factory("whole_body")
    out = tmp_path / "out"
    r = pacs.run([PYTHON, str(APP), "-i", str(study.dicom_dir), "-o", str(out)],
                 env=pacs.client_env(CORPUSCT_PACS_SPOOL=tmp_path / "spool"))
    assert r.returncode == 0, r.stderr[-4000:]
    sent = {"range_sr.dcm", "body_composition_seg.dcm", "body_composition_sr.dcm", "report_pdf.dcm"}
    uids = {str(pydicom.dcmread(out / n, stop_before_pixels=True).SOPInstanceUID) for n in sent}
    assert set(pacs.sop_instance_uids()) == uids
