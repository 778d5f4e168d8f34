"""Results to PACS: writer times, objects per second to a real Orthanc, spool recovery time. Prints the figures.

    .venv/bin/python benchmarks/bench_pacs.py [--region whole|abdomen] [--matrix 256] [--keep DIR]

1. Generates the demo study (procedural phantom; default the built-in whole-body demo, 256 x 256, 5 mm) and
   writes the ground-truth organ SEG, the organ-volume SR, an RT Dose on the CT grid and a PDF (times).
2. Starts Orthanc (Debian package) in a private network namespace (tests/orthanc_fixture.py; needs root /
   CAP_SYS_ADMIN) and sends the CT series + SEG with our sender (``python -m operators.pacs_sender send``,
   C-ECHO then C-STORE over one association): objects per second and MB/s; dcmtk's storescu on the same
   files into a fresh Orthanc for comparison.
3. Spool recovery: the same files sent while Orthanc is down (one attempt) land in the spool; Orthanc comes
   back and ``resend`` delivers them: seconds for N spooled files, and a check that Orthanc holds each
   SOP Instance UID once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from orthanc_fixture import OrthancServer, netns_unavailable_reason  # noqa: E402

from models.phantoms import generate_phantom, write_demo_study  # noqa: E402
from models.phantoms.study import DEMO_PARAMS  # noqa: E402
from operators.common.dicom_series import series_to_volume  # noqa: E402
from operators.common.labels import ORGANS  # noqa: E402
from operators.common.volume import load_nifti  # noqa: E402
from operators.dicom_output import (  # noqa: E402
    SourceSeries,
    render_text_pdf,
    to_volume_grid,
    write_encapsulated_pdf,
    write_organ_volume_report,
    write_rt_dose,
    write_seg,
)


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--region", default="whole")
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args()
    reason = netns_unavailable_reason()
    if reason:
        print(f"SKIPPED: {reason}")
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="corpusct-bench-pacs-"))
    work.mkdir(parents=True, exist_ok=True)

    params = dataclasses.replace(DEMO_PARAMS, region=args.region, matrix=args.matrix)
    ph, t_gen = timed(generate_phantom, params)
    study, t_write = timed(write_demo_study, ph, work / "study", localizer=False, coronal=False)
    ct_files = list(study.series["axial"].paths)
    vol = series_to_volume([pydicom.dcmread(p) for p in ct_files])
    lab, aff = load_nifti(study.labels_dir / "organs.nii.gz")
    organs = to_volume_grid(lab, aff, vol.affine_lps, vol.shape).astype(np.uint8)
    out = work / "results"
    src, t_src = timed(SourceSeries.from_volume, vol)
    seg, t_seg = timed(write_seg, src, organs, ORGANS, out / "organs_seg.dcm")
    _, t_sr = timed(write_organ_volume_report, vol, organs, out / "sr.dcm", seg=seg, source=src)
    _, t_rd = timed(write_rt_dose, 0.01 * np.clip(vol.hu + 1000, 0, None) / 1000, vol.affine_lps, src, out / "rd.dcm")
    _, t_pdf = timed(write_encapsulated_pdf, render_text_pdf("bench", ["x"]), src, out / "pdf.dcm")
    print(f"demo study {params.region} {vol.shape} (z, y, x): phantom {t_gen:.1f} s, DICOM {t_write:.1f} s")
    print(f"writers: source headers {t_src:.2f} s, SEG ({len(seg.segments)} segments, "
          f"{seg.path.stat().st_size / 1e6:.1f} MB) {t_seg:.2f} s, SR {t_sr:.2f} s, RT Dose {t_rd:.2f} s, "
          f"PDF {t_pdf:.2f} s")

    files = [*map(str, ct_files), str(seg.path)]
    mb = sum(Path(f).stat().st_size for f in files) / 1e6
    expected = set(vol.meta.sop_instance_uids) | {seg.sop_instance_uid}

    with OrthancServer(work / "orthanc_a") as pacs:
        t0 = time.perf_counter()
        rc, summary, err = pacs.sender("send", *files, "--spool", str(work / "spool_a"), "-l", "WARNING")
        wall = time.perf_counter() - t0
        assert rc == 0, err[-2000:]
        el = summary["elapsed_s"]
        assert pacs.count_instances() == len(expected)
        print(f"C-STORE to Orthanc, our sender: {len(files)} objects ({mb:.1f} MB) in {el:.2f} s = "
              f"{len(files) / el:.1f} objects/s, {mb / el:.1f} MB/s ({wall:.2f} s with process start)")
    with OrthancServer(work / "orthanc_b") as pacs:
        t0 = time.perf_counter()
        r = pacs.run(["storescu", "--required", "-aec", pacs.aet, "127.0.0.1", str(pacs.dicom_port), *files])
        el = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr[-2000:]
        print(f"C-STORE to Orthanc, dcmtk storescu (reference): {len(files)} objects in {el:.2f} s = "
              f"{len(files) / el:.1f} objects/s")

    with OrthancServer(work / "orthanc_c") as pacs:
        pacs.stop()
        spool = work / "spool_c"
        t0 = time.perf_counter()
        rc, summary, _ = pacs.sender("send", *files, "--spool", str(spool), "--attempts", "1", "-l", "WARNING")
        t_spool = time.perf_counter() - t0
        assert rc == 5 and summary["n_left_in_spool"] == len(files), summary
        pacs.start()
        t0 = time.perf_counter()
        rc, summary, err = pacs.sender("resend", "--spool", str(spool), "-l", "WARNING")
        t_resend = time.perf_counter() - t0
        assert rc == 0 and summary["n_left_in_spool"] == 0, err[-2000:]
        stored = pacs.sop_instance_uids()
        assert len(stored) == len(set(stored)) == len(expected) and set(stored) == expected
        print(f"spool: {len(files)} files spooled (PACS down) in {t_spool:.2f} s; recovery after the PACS came "
              f"back: resend in {t_resend:.2f} s ({summary['elapsed_s']:.2f} s sending, "
              f"{len(files) / summary['elapsed_s']:.1f} objects/s); Orthanc holds each of the "
              f"{len(expected)} SOP Instance UIDs once")
    print(json.dumps({"objects": len(files), "mb": round(mb, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
