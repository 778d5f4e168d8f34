"""Series loading speed: folder -> studies -> selection -> CTVolume, for a generated 512x512x400 series and the
real TCIA series (when ../shared/data is present). Prints the figures; target: < 5 s for 512x512x400.

    .venv/bin/python benchmarks/bench_series_load.py [--slices 400] [--compressed jpegls|j2k] [--keep DIR]

The series is generated with pydicom into a temporary folder (a template slice from the phantom package's
``write_ct_series``, then one file per slice). "cold" runs first evict the files from the page cache
(posix_fadvise DONTNEED after fsync), "warm" runs read them from memory.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantoms.dicom_export import write_ct_series  # noqa: E402
from operators.common.dicom_files import scan_folder  # noqa: E402
from operators.common.dicom_series import series_to_volume  # noqa: E402
from operators.common.paths import shared_data_dir  # noqa: E402
from operators.common.volume import CTMetadata, CTVolume, axial_affine  # noqa: E402
from operators.series_selector.selection import RuleOutcome, SeriesInput, select_ct_series  # noqa: E402


def generate_series(out: Path, n_slices: int, size: int = 512, compressed: str | None = None) -> float:
    """Write an n_slices x size x size axial CT series (body ellipse + noise); returns seconds taken."""
    t0 = time.perf_counter()
    tmpl_dir = out / "_template"
    vol1 = CTVolume(np.full((1, size, size), -1000.0, np.float32), axial_affine((1.25, 0.8, 0.8), (-205, -205, -500)),
                    CTMetadata(convolution_kernel="B30f", kvp=120.0, ctdivol_mgy=10.0, slice_thickness_mm=1.25))
    tmpl = pydicom.dcmread(write_ct_series(vol1, tmpl_dir, 2, "BENCH AXIAL 1.25 B30f")[0])
    shutil.rmtree(tmpl_dir)
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((yy - size / 2) / (size * 0.33)) ** 2 + ((xx - size / 2) / (size * 0.42)) ** 2 < 1
    rng = np.random.default_rng(0)
    series_uid = pydicom.uid.generate_uid()
    syntax = {"jpegls": pydicom.uid.JPEGLSLossless, "j2k": pydicom.uid.JPEG2000Lossless, None: None}[compressed]
    for k in range(n_slices):
        ds = copy.deepcopy(tmpl)  # Dataset.copy() is shallow: element dicts would be shared
        uid = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-205, -205, f"{-500 + 1.25 * k:.2f}"]
        ds.XRayTubeCurrent = int(150 + 100 * np.sin(k / 40))
        hu = np.where(body, 40.0, -1000.0) + rng.normal(0, 15, (size, size))
        ds.PixelData = np.clip(hu + 1024, 0, 4095).astype("<u2").tobytes()
        if syntax is not None:
            ds.compress(syntax)
        ds.save_as(out / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
    return time.perf_counter() - t0


def evict(folder: Path) -> bool:
    ok = True
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                ok = False
            finally:
                os.close(fd)
    return ok


def load(folder: Path) -> tuple[dict, tuple]:
    """Timed: read folder, select (content checks + ranking), build the volume."""
    t = {}
    t0 = time.perf_counter()
    scan = scan_folder(folder)
    t["read+validate"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    inputs = [SeriesInput(st, se, ds, RuleOutcome("bench")) for st, ser in scan.grouped().items()
              for se, ds in ser.items()]
    rep = select_ct_series(inputs)
    t["select"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    vol = series_to_volume(rep.chosen.handle if rep.chosen.handle is not None else
                           next(i.datasets for i in inputs if i.series_instance_uid == rep.chosen.series_instance_uid))
    t["to_volume"] = time.perf_counter() - t2
    t["total"] = time.perf_counter() - t0
    return t, vol.shape


def report(label: str, folder: Path, repeats: int = 2) -> None:
    for mode in ("cold", "warm"):
        for _ in range(repeats if mode == "warm" else 1):
            if mode == "cold" and not evict(folder):
                mode = "cold?"  # eviction refused: figure is probably warm
            t, shape = load(folder)
            print(f"{label:34s} {mode:5s} shape {shape}: " +
                  ", ".join(f"{k} {v:.2f} s" for k, v in t.items()), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--compressed", choices=["jpegls", "j2k"], default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the generated series here and keep it")
    args = ap.parse_args(argv)
    print(f"CPU cores: {os.cpu_count()}; numpy {np.__version__}; pydicom {pydicom.__version__}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_series_"))
    try:
        folder = args.keep or tmp / "series"
        folder.mkdir(parents=True, exist_ok=True)
        dt = generate_series(folder, args.slices, compressed=args.compressed)
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"generated {args.slices} slices 512x512 ({args.compressed or 'uncompressed'}, {size_mb:.0f} MB) "
              f"in {dt:.1f} s")
        report(f"512x512x{args.slices} {args.compressed or 'uncompressed'}", folder)
        ct = shared_data_dir() / "ct"
        for name in ("tcia-chest-siemens", "tcia-abdomen-pelvis-toshiba"):
            if (ct / name).is_dir():
                dst = tmp / name
                shutil.copytree(ct / name, dst)
                report(name, dst)
            else:
                print(f"{name}: skipped (no shared data at {ct})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
