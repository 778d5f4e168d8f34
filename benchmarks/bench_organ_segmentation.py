"""Organ-segmentation speed and memory on a 512 x 512 x 300 synthetic series (procedural whole-body phantom, 5 mm
slices, vertex to mid-thigh: 300 slices = 1.5 m, the usual whole-body PET/CT range).

    python benchmarks/bench_organ_segmentation.py [--models models] [--threads N] [--organs liver,spleen]

Wall times depend on what else runs on the machine (the load average is recorded); ``cpu`` = process CPU
time (all threads). Runs: (1) GrayNet range (not counted in the organ figures); (2) every organ alone, with the range (the operator's
normal path: body box + windowing + network on the organ's slices + mapping back), wall time per organ; (3) all
organs in one call (shared preprocessing per HU window), total and per organ; (4) liver without the range (all
300 slices); (5) the anchor post-process of the full label map. Peak memory: process peak RSS
(``resource.getrusage``) and the tracemalloc peak of numpy/python allocations during the all-organs call.

Bundles: the per-organ bundles in ``--models`` (models/organ_segmentation/bundles); an organ of the 23 without a
bundle is timed with an untrained network of the same architecture (models/organ_segmentation/network.py,
seeded, exported to TorchScript with fp16 weights like the trained ones) and marked ``untrained`` in the output:
speed depends on the architecture only, not on the weights. Target (issue #4): <= 2 s per organ and <= 45 s for
all 23 on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.common.labels import ORGANS  # noqa: E402
from operators.common.paths import REPO_ROOT  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_series(n_slices: int = 300, matrix: int = 512, cache: Path | None = REPO_ROOT / "build" / "bench_organs"):
    """The benchmark series (cached as .npy under build/ after the first run: generating it takes ~80 s)."""
    from models.phantoms import PhantomParams, generate_phantom
    from operators.common.volume import CTVolume

    if cache is not None and (cache / "hu.npy").is_file():
        return CTVolume(np.load(cache / "hu.npy"), np.load(cache / "affine.npy"))
    ph = generate_phantom(PhantomParams(seed=11, sex="M", age_years=50.0, region="whole", matrix=matrix,
                                        slice_thickness_mm=5.0))
    vol = ph.ct
    if vol.shape[0] < n_slices:
        raise SystemExit(f"phantom has only {vol.shape[0]} slices")
    meta = replace(vol.meta, sop_instance_uids=vol.meta.sop_instance_uids[:n_slices],
                   source_files=vol.meta.source_files[:n_slices])
    vol = replace(vol, hu=np.ascontiguousarray(vol.hu[:n_slices]), meta=meta)  # head first: slice 0 = vertex
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / "hu.npy", vol.hu)
        np.save(cache / "affine.npy", vol.affine_lps)
    return vol


def untrained_bundle(root: Path, organ: str, seed: int) -> Path:
    from models.organ_segmentation.network import build_network, export_torchscript

    torch.manual_seed(seed)
    net = build_network().eval()
    d = root / organ
    export_torchscript(net, d / "models" / "model.ts", fp16=True)
    (d / "configs").mkdir(parents=True, exist_ok=True)
    (d / "configs" / "metadata.json").write_text(json.dumps({"name": f"untrained_{organ}", "version": "0",
                                                             "organ": organ}))
    return d


def main(argv=None) -> int:
    from operators.anchor_postprocess.rules import postprocess
    from operators.graynet_range.inference import GrayNetModel
    from operators.graynet_range.operator import run_graynet_range
    from operators.organ_segmentation.inference import (
        available_organs,
        default_threads,
        find_bundles_dir,
        load_organ_models,
        segment_organs,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=str(REPO_ROOT / "models"))
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--organs", default=None)
    ap.add_argument("--out", default=str(REPO_ROOT / "build" / "bench_organ_segmentation.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    organs = a.organs.split(",") if a.organs else [lab.name for lab in ORGANS]

    t = time.perf_counter()
    vol = make_series()
    print(f"series {vol.shape} spacing {tuple(round(s, 2) for s in vol.spacing_mm)} mm, made in "
          f"{time.perf_counter() - t:.1f} s; threads {a.threads}", flush=True)
    rss0 = rss_mb()

    t = time.perf_counter()
    sr, _ = run_graynet_range(vol, GrayNetModel.from_bundle(Path(a.models) / "graynet"), "bench")
    t_range = time.perf_counter() - t
    print(f"GrayNet range: {t_range:.1f} s; covers {', '.join(sr.covered_body_parts)}", flush=True)

    bd = find_bundles_dir(a.models)
    have = set(available_organs(bd)) if bd.is_dir() else set()
    tmp = Path(tempfile.mkdtemp(prefix="bench-organs-"))
    kinds = {}
    for i, organ in enumerate(organs):
        src = bd / organ
        if organ in have:
            (tmp / organ).symlink_to(src.resolve())
            kinds[organ] = "trained"
        else:
            untrained_bundle(tmp, organ, 1000 + i)
            kinds[organ] = "untrained"
    models = load_organ_models(tmp, organs)

    single = {}
    for organ in organs:
        t, c = time.perf_counter(), time.process_time()
        seg = segment_organs(vol, {organ: models[organ]}, sr, threads=a.threads)
        single[organ] = {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(time.process_time() - c, 2),
                         "status": seg.status[organ],
                         "slices": seg.slices.get(organ), "bundle": kinds[organ]}
        print(f"  {organ:20s} {single[organ]['wall_s']:6.2f} s (cpu {single[organ]['cpu_s']:6.2f} s)  "
              f"{seg.status[organ]:22s} slices "
              f"{seg.slices.get(organ)} ({kinds[organ]})", flush=True)

    tracemalloc.start()
    t, c = time.perf_counter(), time.process_time()
    seg = segment_organs(vol, models, sr, threads=a.threads)
    t_all, c_all = time.perf_counter() - t, time.process_time() - c
    _, tm_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_all = rss_mb()
    print(f"all {len(organs)} organs in one call: {t_all:.1f} s wall, {c_all:.1f} s cpu (per-organ timing {seg.timing_s}); tracemalloc peak "
          f"{tm_peak / 2**20:.0f} MB; process peak RSS {rss_all:.0f} MB (after loading the series: {rss0:.0f} MB)",
          flush=True)

    t = time.perf_counter()
    segment_organs(vol, {"liver": models["liver"]}, None, threads=a.threads)
    t_liver_all = time.perf_counter() - t
    print(f"liver on all {vol.shape[0]} slices (no range): {t_liver_all:.2f} s", flush=True)

    t = time.perf_counter()
    postprocess(seg.labels, vol.affine_lps)
    t_pp = time.perf_counter() - t
    print(f"anchor post-process of the full label map: {t_pp:.1f} s", flush=True)

    per = [v["wall_s"] for v in single.values() if v["status"] != "not in field of view"]
    out = {"series_shape": list(vol.shape), "threads": a.threads, "graynet_range_s": round(t_range, 2),
           "per_organ_alone": single, "max_per_organ_s": max(per) if per else None,
           "all_organs_one_call_s": round(t_all, 2), "all_organs_one_call_cpu_s": round(c_all, 2),
           "load_average_1min_at_end": round(__import__("os").getloadavg()[0], 2), "all_organs_timing_s": seg.timing_s,
           "liver_no_range_s": round(t_liver_all, 2), "anchor_postprocess_s": round(t_pp, 2),
           "peak_rss_mb": round(rss_all, 0), "rss_after_series_mb": round(rss0, 0),
           "tracemalloc_peak_mb_all_organs": round(tm_peak / 2**20, 0), "bundles": kinds}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"max per organ {out['max_per_organ_s']} s (target 2 s); all organs {t_all:.1f} s (target 45 s); wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
