"""Results to a real PACS: Orthanc in a private network namespace (tests/orthanc_fixture.py).

* round trip: SEG, SR, RT Dose and PDF of the demo study plus its CT series go through our sender (C-ECHO,
  C-STORE); Orthanc's REST API gives back every SOP Instance UID exactly once, the same bytes, the same study;
* orientation: the SEG downloaded from Orthanc is rebuilt on the CT grid (by referenced SOP instance and by
  image position) and matches the source labels (Dice > 0.99); an overlay PNG is rendered;
* independent peers: dcmtk's echoscu before our sender, storescu for our SEG;
* outage: Orthanc is killed in the middle of a transfer, the rest lands in the spool with manifests, Orthanc
  comes back, ``resend`` delivers; nothing is lost or duplicated;
* the test app (real loader/selector/volume operators, the four writer operators, the sender operator)
  sends all its outputs.
Skipped with the reason where Orthanc is missing or network namespaces are not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from orthanc_fixture import PYTHON, orthanc, orthanc_factory  # noqa: F401 - fixtures

from operators.common.dicom_series import series_to_volume
from operators.common.labels import ORGAN_BY_NAME, ORGANS
from operators.common.volume import load_nifti
from operators.dicom_output import (
    SourceSeries,
    measurement_table,
    read_seg_label_map,
    render_text_pdf,
    to_volume_grid,
    write_encapsulated_pdf,
    write_organ_volume_report,
    write_rt_dose,
    write_seg,
)


@pytest.fixture(scope="module")
def outputs(demo_study, tmp_path_factory):
    """The four result objects of the demo study, written with the library (not the app)."""
    out = tmp_path_factory.mktemp("results")
    ct_files = list(demo_study.series["axial"].paths)
    vol = series_to_volume([pydicom.dcmread(p) for p in ct_files])
    src = SourceSeries.from_volume(vol)
    lab, aff = load_nifti(demo_study.labels_dir / "organs.nii.gz")
    organs = to_volume_grid(lab, aff, vol.affine_lps, vol.shape).astype(np.uint8)
    seg = write_seg(src, organs, ORGANS, out / "organs_seg.dcm", algorithm_name="phantom ground truth")
    sr = write_organ_volume_report(vol, organs, out / "organ_volumes_sr.dcm", seg=seg, source=src)
    dose = write_rt_dose(0.01 * np.clip(vol.hu + 1000, 0, None) / 1000, vol.affine_lps, src, out / "dose.dcm",
                         n_histories=10**6, uncertainty_percent=2.0)
    pdf = write_encapsulated_pdf(render_text_pdf("CorpusCT test report", ["demo"]), src, out / "report.dcm")
    return {"vol": vol, "organs": organs, "ct_files": ct_files, "seg": seg, "sr": sr, "dose": dose, "pdf": pdf,
            "objects": [seg, sr, dose, pdf]}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * float(np.logical_and(a, b).sum()) / float(s)


def test_round_trip_through_orthanc_and_seg_orientation(orthanc, outputs, tmp_path):  # noqa: F811
    pacs = orthanc
    # an independent peer first: dcmtk's echoscu
    r = pacs.run(["echoscu", "-aec", pacs.aet, "127.0.0.1", str(pacs.dicom_port)])
    assert r.returncode == 0, r.stderr
    rc, summary, err = pacs.sender("echo")
    assert rc == 0 and summary["ok"], err

    objects = outputs["objects"]
    files = [*map(str, outputs["ct_files"]), *(str(o.path) for o in objects)]
    rc, summary, err = pacs.sender("send", *files, "--spool", str(tmp_path / "spool"))
    assert rc == 0, err[-3000:]
    assert summary["n_delivered"] == len(files) and summary["n_left_in_spool"] == 0

    expected = set(outputs["vol"].meta.sop_instance_uids) | {o.sop_instance_uid for o in objects}
    stored = pacs.sop_instance_uids()
    assert len(stored) == len(set(stored)) == pacs.count_instances() == len(expected)
    assert set(stored) == expected
    assert len(pacs.rest("/studies")) == 1 and len(pacs.rest("/patients")) == 1  # all in the source study

    study_uid = outputs["vol"].meta.study_instance_uid
    for o, modality in zip(objects, ("SEG", "SR", "RTDOSE", "DOC"), strict=True):
        tags = pacs.tags(o.sop_instance_uid)
        assert tags["Modality"] == modality and tags["StudyInstanceUID"] == study_uid
        assert tags["SeriesInstanceUID"] == o.series_instance_uid != outputs["vol"].meta.series_instance_uid
        assert "not for clinical use" in tags["SeriesDescription"] and tags["Manufacturer"] == "CorpusCT"
        back = pacs.download(o.sop_instance_uid, tmp_path / f"{modality}.dcm")
        # the same data set (Orthanc writes its own file meta header)
        assert pydicom.dcmread(back) == pydicom.dcmread(o.path), f"{modality} changed on its way through the PACS"

    # the SR read back from the PACS references the SEG segments that are in the PACS
    groups = measurement_table(tmp_path / "SR.dcm")
    assert {g["segment"][0] for g in groups} == {outputs["seg"].sop_instance_uid}

    # orientation: the SEG from the PACS rebuilt on the CT grid, frames matched two independent ways
    vol, organs = outputs["vol"], outputs["organs"]
    for match in ("sop", "position"):
        labels, numbers = read_seg_label_map(tmp_path / "SEG.dcm", vol, ORGANS, match=match)
        for lid in numbers.values():
            assert _dice(labels == lid, organs == lid) > 0.99, (match, lid)
    # patient right (liver) is at lower canonical column (x, LPS) than patient left (spleen): the viewer's left
    from operators.common.render import canonical_lps, render_views

    can, aff = canonical_lps(labels, vol.affine_lps)
    x_liver = np.nonzero(can == ORGAN_BY_NAME["liver"].id)[2].mean()
    x_spleen = np.nonzero(can == ORGAN_BY_NAME["spleen"].id)[2].mean()
    assert x_liver < x_spleen
    zc = vol.index_to_lps(np.argwhere(labels == ORGAN_BY_NAME["liver"].id).mean(axis=0)[::-1])[0]
    png = render_views(vol.hu, vol.affine_lps, tmp_path / "seg_from_orthanc_overlay.png",
                       [("axial", zc[2], "SEG read back from Orthanc"), ("coronal", zc[1], "liver centre")],
                       labels=labels, label_table=ORGANS, title="Demo study: SEG from Orthanc on the CT")
    assert png.stat().st_size > 10_000
    if os.environ.get("CORPUSCT_TEST_ARTIFACTS"):
        shutil.copy(png, Path(os.environ["CORPUSCT_TEST_ARTIFACTS"]) / png.name)

    # storescu (dcmtk) as an independent sender of our SEG: accepted, still one instance per SOP UID
    r = pacs.run(["storescu", "--required", "-aec", pacs.aet, "127.0.0.1", str(pacs.dicom_port), str(outputs["seg"].path)])
    assert r.returncode == 0, r.stderr
    assert pacs.count_instances() == len(expected)


def test_orthanc_outage_mid_transfer_spool_and_resend(orthanc_factory, outputs, tmp_path):  # noqa: F811
    pacs = orthanc_factory("outage")
    spool = tmp_path / "spool"
    files = [*map(str, outputs["ct_files"]), *(str(o.path) for o in outputs["objects"])]
    expected = set(outputs["vol"].meta.sop_instance_uids) | {o.sop_instance_uid for o in outputs["objects"]}
    proc = pacs.popen([PYTHON, "-m", "operators.pacs_sender", "send", *files, "--spool", str(spool),
                       "--attempts", "3", "--delay", "0.3"])
    t0 = time.monotonic()
    while pacs.count_instances() < 8:  # let part of the transfer through, then pull the plug
        assert proc.poll() is None and time.monotonic() - t0 < 60, "transfer did not start"
        time.sleep(0.02)
    pacs.stop(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err[-3000:]
    summary = json.loads(out)
    n_sent, n_spooled = summary["n_delivered"], summary["n_spooled"]
    assert n_sent >= 8 and n_spooled > 0 and n_sent + n_spooled == len(files)
    manifests = sorted(spool.glob("*.json"))
    assert len(manifests) == n_spooled == summary["n_left_in_spool"]
    for m in manifests:
        man = json.loads(m.read_text())
        assert (spool / man["file"]).exists() and man["attempts"] >= 1 and man["last_error"]
        assert man["destination"]["port"] == pacs.dicom_port
    spooled_uids = {json.loads(m.read_text())["sop_instance_uid"] for m in manifests}
    delivered_uids = {f["sop_instance_uid"] for f in summary["files"] if f["delivered"]}
    assert spooled_uids | delivered_uids == expected and not spooled_uids & delivered_uids  # nothing lost

    pacs.start()  # the PACS comes back with its storage
    before = set(pacs.sop_instance_uids())
    assert delivered_uids <= before  # every acknowledged instance survived the crash
    rc, summary, err = pacs.sender("resend", "--spool", str(spool))
    assert rc == 0, err[-3000:]
    assert summary["n_delivered"] == n_spooled and summary["n_left_in_spool"] == 0
    assert not list(spool.iterdir())
    stored = pacs.sop_instance_uids()
    assert len(stored) == len(set(stored)) == len(expected) and set(stored) == expected
    # sending again (the results and a few images) never duplicates
    rc, _, err = pacs.sender("send", *files[:5], *files[-4:], "--spool", str(spool))
    assert rc == 0, err[-2000:]
    assert pacs.count_instances() == len(expected)


def test_app_writes_and_sends_all_outputs(orthanc, demo_study, tmp_path):  # noqa: F811
    pacs = orthanc
    before = set(pacs.sop_instance_uids())
    out = tmp_path / "out"
    r = pacs.run([PYTHON, "tests/orthanc_fixture.py", "-i", str(demo_study.dicom_dir), "-o", str(out)],
                 env=pacs.client_env(CORPUSCT_TEST_LABELS=demo_study.labels_dir,
                                     CORPUSCT_PACS_SPOOL=tmp_path / "spool"))
    assert r.returncode == 0, r.stderr[-4000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dose_rtdose.dcm", "organ_volumes_sr.dcm", "organs_seg.dcm", "report_pdf.dcm"]
    uids = {str(pydicom.dcmread(out / n, stop_before_pixels=True).SOPInstanceUID): n for n in names}
    after = set(pacs.sop_instance_uids())
    assert after - before == set(uids)
    seg_uid = next(u for u, n in uids.items() if n == "organs_seg.dcm")
    assert {g["segment"][0] for g in measurement_table(out / "organ_volumes_sr.dcm")} == {seg_uid}
    assert not (tmp_path / "spool").exists() or not list((tmp_path / "spool").iterdir())


@pytest.mark.slow
def test_app_with_pacs_down_exits_5_and_spools(orthanc_factory, demo_study, tmp_path):  # noqa: F811
    pacs = orthanc_factory("down")
    pacs.stop()
    out, spool = tmp_path / "out", tmp_path / "spool"
    env = pacs.client_env(CORPUSCT_TEST_LABELS=demo_study.labels_dir, CORPUSCT_PACS_SPOOL=spool)
    r = pacs.run([PYTHON, "tests/orthanc_fixture.py", "-i", str(demo_study.dicom_dir), "-o", str(out)], env=env)
    assert r.returncode == 5, r.stderr[-3000:]
    assert "resend --spool" in r.stderr
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # no partial output published
    assert len(list(spool.glob("*.json"))) == 4
    pacs.start()
    rc, summary, err = pacs.sender("resend", "--spool", str(spool))
    assert rc == 0 and summary["n_delivered"] == 4, err[-2000:]
    assert pacs.count_instances() == 4
