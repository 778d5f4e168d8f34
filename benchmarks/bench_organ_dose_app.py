"""Organ-dose app speed and memory on a study (issue #7 target: under 60 s per study without Monte Carlo on this
2-core machine).

    python benchmarks/bench_organ_dose_app.py [-i DICOM_DIR] [--threads 2] [--out build/bench_organ_dose_app]

Default input: the real Toshiba abdomen-pelvis series (../shared/data/ct/tcia-abdomen-pelvis-toshiba). The app
runs as a MAP runs it (``python apps/organ_dose -i DICOM -o OUT``) in a child process with OMP/torch/numba
threads = ``--threads``. Printed: wall time (with the Python start-up), the app's own run time (its log's
"Finished in"), peak RSS of the whole process tree (the feature workers run beside the app; sampled every
0.2 s), each operator's time from its log line, and the organ-dose step's own timing (features, networks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_whole_body import run_app  # noqa: E402
from operators.common.paths import shared_data_dir  # noqa: E402

OPERATOR_TIME = re.compile(r"INFO operators\.[\w.]+\.(\w+): (.*?) in ([\d.]+) s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--input", type=Path, default=shared_data_dir() / "ct" / "tcia-abdomen-pelvis-toshiba")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench_organ_dose_app")
    a = ap.parse_args(argv)
    if not a.input.is_dir():
        print(f"input folder {a.input} not found")
        return 2
    shutil.rmtree(a.out, ignore_errors=True)
    code, stdout, stderr, wall, tree_peak = run_app("organ_dose", a.input, a.out, a.threads)
    log = stdout + stderr
    (a.out.parent / f"{a.out.name}.log").write_text(log)
    if code != 0:
        print(f"app failed (exit {code})\n{stderr[-3000:]}")
        return 1
    m = re.search(r"Finished in ([\d.]+) s", log)
    res = json.loads((a.out / "results.json").read_text())
    print(f"organ_dose on {a.input.name}, {a.threads} thread(s), {os.cpu_count()} CPUs:")
    print(f"  wall {wall:.1f} s (with Python start-up); app run {float(m.group(1)) if m else float('nan'):.1f} s; "
          f"peak RSS {tree_peak / 1024 ** 3:.2f} GiB (whole process tree)")
    for op, what, sec in OPERATOR_TIME.findall(log):
        print(f"    {op:<34s} {float(sec):7.1f} s  ({what[:70]})")
    print(f"  organ-dose step: {json.dumps(res.get('timing_s', {}))}")
    print(f"  target: < 60 s -> {'met' if wall < 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
