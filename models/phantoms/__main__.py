"""Command line: ``python -m models.phantoms demo --out DIR [options]`` writes the demo study.

    python -m models.phantoms demo --out build/demo/study [--region whole|head|chest|abdomen|pelvis]
        [--seed N] [--sex F|M] [--age Y] [--bmi X | --weight KG] [--height CM] [--arms auto|down|up]
        [--slice-thickness MM] [--slice-spacing MM] [--pixel-size MM] [--matrix N] [--fov MM]
        [--contrast none|arterial|portal] [--kernel soft|standard|sharp] [--noise HU] [--no-table]
        [--no-localizer] [--no-coronal] [--png DIR]

Output: DIR/dicom (the DICOM study) and DIR/labels (NIfTI label maps and phantom.json), see study.py.
"""

from __future__ import annotations

import argparse
import sys
import time

from .params import CONTRASTS, KERNELS, REGIONS, PhantomParams


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.phantoms", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="write a synthetic DICOM study of the procedural phantom")
    d.add_argument("--out", required=True, help="output folder (DICOM goes to OUT/dicom, labels to OUT/labels)")
    d.add_argument("--region", choices=REGIONS, default="whole")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--sex", choices=["F", "M"], default="M")
    d.add_argument("--age", type=float, default=45.0)
    d.add_argument("--bmi", type=float, default=None)
    d.add_argument("--weight", type=float, default=None, help="kg (instead of --bmi)")
    d.add_argument("--height", type=float, default=None, help="cm (default: median for age and sex)")
    d.add_argument("--arms", choices=["auto", "down", "up"], default="auto",
                   help="auto: down for whole/head, up for chest/abdomen/pelvis")
    d.add_argument("--slice-thickness", type=float, default=5.0)
    d.add_argument("--slice-spacing", type=float, default=None)
    d.add_argument("--pixel-size", type=float, default=None)
    d.add_argument("--matrix", type=int, default=256)
    d.add_argument("--fov", type=float, default=None)
    d.add_argument("--contrast", choices=CONTRASTS, default="none")
    d.add_argument("--kernel", choices=list(KERNELS), default="standard")
    d.add_argument("--noise", type=float, default=None, help="noise SD (HU) at the reference size")
    d.add_argument("--no-table", action="store_true")
    d.add_argument("--no-localizer", action="store_true")
    d.add_argument("--no-coronal", action="store_true")
    d.add_argument("--png", default=None, help="also render check images (PNG) into this folder")
    a = ap.parse_args(argv)

    from .phantom import generate_phantom
    from .study import write_demo_study

    bmi = a.bmi if (a.bmi is not None or a.weight is not None) else 25.0 if a.age >= 18 else None
    try:
        params = PhantomParams(seed=a.seed, sex=a.sex, age_years=a.age, height_cm=a.height, weight_kg=a.weight,
                               bmi=bmi, arms=a.arms, region=a.region, slice_thickness_mm=a.slice_thickness,
                               slice_spacing_mm=a.slice_spacing, matrix=a.matrix, pixel_size_mm=a.pixel_size,
                               fov_mm=a.fov, contrast=a.contrast, kernel=a.kernel, noise_hu=a.noise,
                               table=not a.no_table).resolved()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    ph = generate_phantom(params)
    t1 = time.perf_counter()
    st = write_demo_study(ph, a.out, localizer=not a.no_localizer, coronal=not a.no_coronal)
    t2 = time.perf_counter()
    nz, ny, nx = ph.ct.shape
    print(f"phantom {params.sex} {params.age_years:g} y {params.height_cm:g} cm {params.weight_kg:g} kg "
          f"BMI {params.bmi:.1f}, {params.region}: {nz} x {ny} x {nx}, spacing "
          f"{'/'.join(f'{v:.2f}' for v in ph.ct.spacing_mm)} mm; generated in {t1 - t0:.1f} s, written in "
          f"{t2 - t1:.1f} s")
    print(f"DICOM study: {st.dicom_dir}")
    print(f"labels:      {st.labels_dir}")
    if a.png:
        from .render import render_phantom

        for p in render_phantom(ph, a.png):
            print(f"png:         {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
