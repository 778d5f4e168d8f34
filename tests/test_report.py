"""The study report (operators/report): document from results dicts + images, HTML, PDF, DICOM Encapsulated PDF.

Inputs are made by the real domain code where it exists (GrayNet range, body-composition analysis on the
phantom's ground-truth map); the organ and dose dicts follow the schemas of issues #4 and #7."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pydicom
import pytest
from _dicom_checks import dciodvfy, needs_dciodvfy

from operators.body_composition.analysis import analyse
from operators.common.dicom_series import series_to_volume
from operators.common.labels import ORGANS
from operators.common.paths import REPO_ROOT
from operators.common.volume import load_nifti
from operators.dicom_output import SourceSeries, read_encapsulated_pdf, to_volume_grid, write_encapsulated_pdf
from operators.graynet_range.inference import GrayNetModel
from operators.graynet_range.operator import run_graynet_range
from operators.report import figures
from operators.report.document import NOT_IN_FOV, build_report, fmt
from operators.report.operator import make_report
from operators.report.render import render_html, render_page_pngs, render_pdf
from operators.report.timing import OperatorTimings, timed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(demo_study):
    """CT of the demo study's axial series, its headers, ground-truth maps on its grid and the results dicts."""
    paths = demo_study.series["axial"].paths
    headers = [pydicom.dcmread(p) for p in paths]
    vol = series_to_volume(headers)
    organs, aff = load_nifti(demo_study.labels_dir / "organs.nii.gz")
    bc, aff_bc = load_nifti(demo_study.labels_dir / "body_composition.nii.gz")
    organs = to_volume_grid(organs, aff, vol.affine_lps, vol.shape).astype(np.uint8)
    bc = to_volume_grid(bc, aff_bc, vol.affine_lps, vol.shape).astype(np.uint8)
    _, rng = run_graynet_range(vol, GrayNetModel.from_bundle(REPO_ROOT / "models" / "graynet"), "whole_body")
    lm = demo_study.phantom.landmarks_mm
    bc_res = analyse(vol, bc, landmarks={"lowest_rib": lm["lowest_rib"], "iliac_crest": lm["iliac_crest"]}).to_json()
    voxel_ml = float(np.prod(vol.spacing_mm)) / 1000.0
    organ_res = {"organs": {}}
    for lab in ORGANS:
        m = organs == lab.id
        organ_res["organs"][lab.name] = (
            {"volume_ml": float(m.sum() * voxel_ml), "mean_hu": float(vol.hu[m].mean()), "status": "segmented"}
            if m.any() else {"volume_ml": None, "mean_hu": None, "status": NOT_IN_FOV})
    seg = [k for k, v in organ_res["organs"].items() if v["status"] == "segmented"]
    dose = {"organ_doses_mgy": {k: {"dose": 4.0 + 0.25 * i, "method": "network" if i % 2 else "monte_carlo",
                                    "uncertainty": 0.1 * (1 + i % 3)} for i, k in enumerate(seg)},
            "ctdivol_mgy": vol.meta.ctdivol_mgy, "ssde_mgy": 1.3 * vol.meta.ctdivol_mgy, "dose_source": "header"}
    results = {"range": rng, "organs": organ_res, "body_composition": bc_res, "organ_dose": dose}
    return {"vol": vol, "headers": headers, "organs": organs, "bc": bc, "results": results}


@pytest.fixture(scope="module")
def full_doc(study):
    return build_report(study["results"], ct=study["vol"], organ_labels=study["organs"],
                        body_composition_labels=study["bc"], timings={"graynet_range": 1.25, "body_composition": 9.5})


def _identifiers(headers) -> list[str]:
    ref = headers[0]
    out = [str(ref.PatientName), str(ref.PatientID), *str(ref.PatientName).split("^")]
    if ref.get("PatientBirthDate"):
        out.append(str(ref.PatientBirthDate))
    return [v for v in out if len(v) >= 3]


def test_full_report_sections_tables_and_figures(full_doc, study):
    res = study["results"]
    assert [s.key for s in full_doc.sections] == ["scan", "organs", "body_composition", "organ_dose", "provenance"]
    assert all(s.present for s in full_doc.sections)
    # organs: one row per segmented organ with the input's numbers; the others named as not in field of view
    organ_rows = {r[0]: r for r in full_doc.section("organs").tables[0].rows}
    for name, o in res["organs"]["organs"].items():
        if o["status"] == "segmented":
            assert organ_rows[name.replace("_", " ")][1:3] == [fmt(o["volume_ml"], 1), fmt(o["mean_hu"], 0)]
        else:
            assert name.replace("_", " ") not in organ_rows
            assert name.replace("_", " ") in " ".join(full_doc.section("organs").paragraphs)
    # body composition: waist values and the cut-off for the patient's sex
    bc = res["body_composition"]
    rows = {r[0]: r for r in full_doc.section("body_composition").tables[0].rows}
    smi = rows["Skeletal muscle index SMI (cm2/m2)"]
    assert smi[1] == fmt(bc["waist"]["smi_cm2_m2"])
    assert smi[3] == f"low if < {fmt(bc['cutoffs']['smi_cm2_m2'][bc['sex']])}"
    assert smi[4] == ("YES" if bc["flags"]["low_smi"] else "no")
    # doses: every organ with its dose, method and uncertainty; CTDIvol and SSDE beside them
    dose_rows = full_doc.section("organ_dose").tables[0].rows
    assert len(dose_rows) == len(res["organ_dose"]["organ_doses_mgy"])
    first = next(iter(res["organ_dose"]["organ_doses_mgy"].items()))
    assert dose_rows[0] == [first[0].replace("_", " "), fmt(first[1]["dose"], 2), f"+- {fmt(first[1]['uncertainty'], 2)}",
                            first[1]["method"]]
    indices = dict(full_doc.section("organ_dose").tables[1].rows)
    assert indices["CTDIvol"] == fmt(res["organ_dose"]["ctdivol_mgy"], 2, "mGy")
    # scan: the GrayNet range as given
    scan = dict(full_doc.section("scan").tables[0].rows)
    r = res["range"]["scan_range_icrp110_cm"]
    assert scan[f"Scan range (ICRP-110 {r['phantom']})"].startswith(f"{fmt(r['start'])} to {fmt(r['end'])} cm")
    # provenance: source UIDs, model versions, timings
    prov = dict(full_doc.section("provenance").tables[0].rows)
    assert prov["Source series UID"] == study["vol"].meta.series_instance_uid
    assert "graynet" in prov["Models"]
    assert dict(full_doc.section("provenance").tables[1].rows)["graynet range"] == "1.25"
    names = {f.name for s in full_doc.sections for f in s.figures}
    assert names == {"scan_range", "organ_overlay", "body_composition_indices", "waist_slices", "organ_doses"}
    for s in full_doc.sections:
        for f in s.figures:
            assert f.png.startswith(PNG_MAGIC) and len(f.png) > 5000, f.name


def test_missing_and_not_evaluable_sections_are_one_line_notes(study):
    from models.phantoms import PhantomParams, generate_phantom

    head = generate_phantom(PhantomParams(seed=2, region="head", matrix=64, slice_thickness_mm=5.0))
    bc_head = analyse(head.ct, head.body_composition).to_json()
    assert bc_head["status"] == "not_evaluable"
    doc = build_report({"range": study["results"]["range"], "body_composition": bc_head}, ct=head.ct,
                       body_composition_labels=head.body_composition)
    bc = doc.section("body_composition")
    assert not bc.present and bc.note.startswith(f"waist {NOT_IN_FOV}") and bc_head["reason"] in bc.note
    assert not bc.tables and not bc.figures
    assert doc.section("organs").note == "organ segmentation not run"
    assert doc.section("organ_dose").note == "organ dose not run"
    assert doc.section("scan").present and doc.section("provenance").present
    html = render_html(doc)
    assert f"waist {NOT_IN_FOV}" in html and "organ segmentation not run" in html
    # nothing at all: still a report that says so
    empty = build_report({})
    assert [s.present for s in empty.sections] == [False, False, False, False, True]


def test_html_is_self_contained_and_free_of_patient_identifiers(full_doc, study):
    html = render_html(full_doc)
    assert html.count("Research use only - not for clinical use") >= 2
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
    for value in _identifiers(study["headers"]):
        assert value not in html, "patient identifier in the HTML report"


def test_pdf_every_page_says_not_for_clinical_use(full_doc, study, tmp_path):
    from pypdf import PdfReader

    pdf = render_pdf(full_doc)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    texts = [p.extract_text() for p in reader.pages]
    for i, t in enumerate(texts):
        assert "not for clinical use" in t.lower(), f"page {i + 1}"
        assert f"page {i + 1} of {len(texts)}" in t
    joined = "\n".join(texts)
    for title in ("Scan and scan range", "Organs", "Body composition", "Organ doses", "Provenance"):
        assert title in joined
    for value in _identifiers(study["headers"]):
        assert value not in joined
    pngs = render_page_pngs(full_doc, tmp_path)
    assert len(pngs) == len(texts) and all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)


@needs_dciodvfy
def test_report_as_dicom_encapsulated_pdf(full_doc, study, tmp_path):
    src = SourceSeries.from_volume(study["vol"])
    pdf = render_pdf(full_doc)
    res = write_encapsulated_pdf(pdf, src, tmp_path / "report_pdf.dcm", title=full_doc.title)
    errors, _ = dciodvfy(res.path)
    assert not errors, errors
    ds = pydicom.dcmread(res.path)
    assert read_encapsulated_pdf(ds) == pdf
    assert ds.StudyInstanceUID == study["vol"].meta.study_instance_uid
    refs = {it.ReferencedSOPInstanceUID for it in ds.SourceInstanceSequence}
    assert refs == set(study["vol"].meta.sop_instance_uids)


def test_range_diagram_draws_the_range_superior_up():
    import matplotlib.image as mpimg

    def red_rows(start, end):
        img = mpimg.imread(io.BytesIO(figures.range_diagram_png({"phantom": "AM", "start": start, "end": end,
                                                                  "uncertainty": 0.0})), format="png")
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        rows = np.nonzero(((r > 0.9) & (g < 0.8) & (b < 0.8)).sum(axis=1) > 20)[0]
        return rows.min() / img.shape[0], rows.max() / img.shape[0]

    head = red_rows(150.0, 175.0)  # head and neck: near the top of the picture
    legs = red_rows(10.0, 50.0)  # lower legs: near the bottom
    assert head[1] < legs[0]
    assert head[0] < 0.35 and legs[1] > 0.65


def test_make_report_writes_files_and_the_combined_results(study, tmp_path):
    t = OperatorTimings()
    t.add("graynet_range", 0.5)
    doc, pdf, combined = make_report({"range": study["results"]["range"], "organs": None}, tmp_path, ct=study["vol"],
                                     timings=t, outputs=["range_sr.dcm"])
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.pdf").read_bytes() == pdf
    assert combined["sections"]["organs"] == "organ segmentation not run" and "organs" not in combined
    assert combined["range"] is study["results"]["range"]
    assert combined["outputs"] == ["range_sr.dcm", "report.html", "report.pdf", "report_pdf.dcm"]
    assert combined["timing_s"] is t.seconds  # shared: operators finishing later still reach results.json
    assert combined["provenance"]["models"]["graynet"] == study["results"]["range"]["provenance"]["models"]["graynet"]


def test_timed_wrapper_records_compute_time():
    import time as _time

    class Op:
        name = "slow_op"

        def compute(self, op_input, op_output, context):
            _time.sleep(0.02)
            return "done"

    t = OperatorTimings()
    op = timed(Op, t)()
    assert isinstance(op, Op) and op.compute(None, None, None) == "done"
    op.compute(None, None, None)
    assert 0.04 <= t.seconds["slow_op"] < 1.0
    assert list(t.seconds) == ["slow_op"]
