"""Whole-body app speed and memory on a real-size study: wall time, peak memory and time per operator.

    python benchmarks/bench_whole_body.py [--matrix 512] [--slices 300] [--threads 2] [--work build/bench_whole_body]

Input: the procedural whole-body phantom written as a DICOM study (models.phantoms write_demo_study: localizer,
axial series, coronal reformat) at ``--matrix`` x ``--matrix`` with the slice spacing chosen so that the axial
series has about ``--slices`` slices (vertex to soles). It is generated once into ``--work`` and reused.

The app runs as a MAP runs it (``python apps/whole_body -i DICOM -o OUT``) in a child process with
OMP/torch/numba threads = ``--threads``. Printed: the child's wall time, its peak RSS (getrusage: the largest
single process), the peak of the summed RSS of the app's whole process tree (sampled from /proc every 0.2 s: the
organ-dose feature workers run beside the app process),
the app's own run time (from its log, without the Python start-up) and each operator's compute time from
results.json ``timing_s`` (apps/whole_body times every operator's compute).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WHOLE_BODY_MM = 1780.0  # z coverage of the procedural phantom's "whole" region for the default adult


def make_study(work: Path, matrix: int, slices: int) -> Path:
    from models.phantoms import PhantomParams, generate_phantom, write_demo_study

    dicom = work / "study" / "dicom"
    tag = work / "study" / f"params_{matrix}_{slices}.txt"
    if tag.is_file() and dicom.is_dir():
        return dicom
    shutil.rmtree(work / "study", ignore_errors=True)
    spacing = round(WHOLE_BODY_MM / slices, 2)
    t = time.monotonic()
    ph = generate_phantom(PhantomParams(seed=11, sex="M", age_years=50.0, bmi=26.0, region="whole", matrix=matrix,
                                        slice_thickness_mm=spacing))
    write_demo_study(ph, work / "study")
    tag.write_text(f"shape {ph.ct.shape} spacing {ph.ct.spacing_mm}\n")
    print(f"study generated in {time.monotonic() - t:.0f} s: axial {ph.ct.shape} (z, y, x), spacing "
          f"{tuple(round(s, 2) for s in ph.ct.spacing_mm)} mm", flush=True)
    return dicom


def tree_rss_bytes(root_pid: int) -> int:
    """Summed RSS of ``root_pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int((d / "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


class TreePeak(threading.Thread):
    """Samples tree_rss_bytes(pid) until stopped; ``peak`` in bytes."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak, self.done = pid, every_s, 0, threading.Event()

    def run(self):
        while not self.done.wait(self.every_s):
            self.peak = max(self.peak, tree_rss_bytes(self.pid))


def run_app(app: str, dicom: Path, out: Path, threads: int):
    """``python apps/<app> -i dicom -o out`` in a child process with ``threads`` OMP/MKL/numba threads, as a MAP
    runs it. Returns (exit code, stdout, stderr, wall seconds, peak RSS of the process tree in bytes)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    t = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "apps" / app), "-i", str(dicom), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = TreePeak(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.monotonic() - t
    sampler.done.set()
    sampler.join()
    return proc.returncode, stdout, stderr, wall, sampler.peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "bench_whole_body")
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    dicom = make_study(a.work, a.matrix, a.slices)
    print((dicom.parent / f"params_{a.matrix}_{a.slices}.txt").read_text().strip(), flush=True)
    out = a.work / "out"
    shutil.rmtree(out, ignore_errors=True)
    code, stdout, stderr, wall, tree_peak = run_app("whole_body", dicom, out, a.threads)
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # KiB -> GiB (largest child)
    tree_gib = tree_peak / 1024 ** 3
    (a.work / "app.log").write_text(stdout + stderr)
    if code != 0:
        print(f"app failed (exit {code}); log in {a.work / 'app.log'}\n{stderr[-3000:]}")
        return 1
    m = re.search(r"Finished in ([\d.]+) s", stderr)
    app_s = float(m.group(1)) if m else float("nan")
    res = json.loads((out / "results.json").read_text())
    timing = res["timing_s"]
    print(f"whole_body on {a.matrix}x{a.matrix}x~{a.slices}, {a.threads} thread(s), {os.cpu_count()} CPUs:")
    print(f"  wall {wall:.1f} s (process, with Python start-up); app run {app_s:.1f} s; peak RSS {peak_gib:.2f} GiB "
          f"(largest process), {tree_gib:.2f} GiB (whole process tree, sampled)")
    print("  per operator (compute wall time, s):")
    for name, sec in sorted(timing.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<58s} {sec:8.2f}")
    rest = app_s - sum(timing.values())
    print(f"    {'graph start/stop and operators after results.json':<58s} {rest:8.2f}")
    print(f"  sections: {res['sections']}")
    print(f"  targets (issue #9): < 120 s wall -> {'met' if wall < 120 else 'NOT met'}; "
          f"< 8 GB peak -> {'met' if max(peak_gib, tree_gib) * 1.073741824 < 8 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
