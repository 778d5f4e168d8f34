"""GrayNet training data, reproducible from seeds: synthetic CT at the network's input resolution.

Two sources, each sample a whole series turned into preprocessed slices (operators/graynet_range/preprocess):

* the procedural phantom (models/phantoms): sex, age 5-85, BMI 17-40 (children 14-28), regions whole /
  head / chest / abdomen / pelvis, slice thickness 1-5 mm, kernels, noise, arms up / down, contrast, table;
* the ICRP-110 AM / AF phantoms (models/phantoms/icrp110.py) with random build (0.85-1.35) and height
  (0.9-1.1) scaling, smooth in-plane deformation, lung density, contrast, noise, blur, HU offset and a random
  z range.

Labels per slice: 24 body parts (labels.body_parts_per_slice from the sample's landmarks), sex, age (NaN for
ICRP-110: the reference adults have no age), weight (phantom parameters; ICRP: reference mass x scales) and
the slice's z mapped onto the AM reference body (piecewise linear through the landmarks). These labels come
from phantom parameters, not from a patient population.

    python -m models.graynet.data --out build/graynet_data --procedural 120 --icrp 40 --seed 0 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from operators.common.labels import BODY_PARTS
from operators.graynet_range.landmark_map import map_z
from operators.graynet_range.preprocess import prepare_slices

PART_NAMES = [bp.name for bp in BODY_PARTS]
MAX_SLICES = 150


def parts_matrix(parts_per_slice: list[list[str]]) -> np.ndarray:
    m = np.zeros((len(parts_per_slice), len(PART_NAMES)), np.uint8)
    idx = {n: i for i, n in enumerate(PART_NAMES)}
    for k, names in enumerate(parts_per_slice):
        for n in names:
            m[k, idx[n]] = 1
    return m


def reference_landmarks() -> dict[str, float]:
    from operators.graynet_range.reference import reference_landmarks as ref

    return ref("AM")


def _pack(x, z, parts, lm, sex, age, weight, rng, source):
    n = len(z)
    keep = np.sort(rng.choice(n, MAX_SLICES, replace=False)) if n > MAX_SLICES else np.arange(n)
    ref_z = map_z(z, lm, reference_landmarks())
    return dict(x=np.clip(np.round(x[keep]), -1024, 3000).astype(np.int16), z=z[keep].astype(np.float32),
                parts=parts_matrix(parts)[keep], ref_z=ref_z[keep].astype(np.float32),
                sex=np.uint8(sex == "M"), age=np.float32(age), weight=np.float32(weight), source=source)


def procedural_volume(seed: int):
    """(rng, CTVolume, body parts per slice, landmarks, sex, age, weight) of a random procedural phantom."""
    from models.phantoms import PhantomParams, generate_phantom

    rng = np.random.default_rng(seed)
    age = float(rng.uniform(5, 85))
    bmi = float(rng.uniform(17, 40) if age >= 16 else rng.uniform(14, 28))
    region = str(rng.choice(["whole", "whole", "head", "chest", "abdomen", "pelvis"]))
    thick = float(rng.choice([2.0, 3.0, 5.0] if region == "whole" else [1.0, 2.0, 3.0, 5.0]))
    p = PhantomParams(seed=seed, sex=str(rng.choice(["F", "M"])), age_years=age, bmi=bmi, region=region,
                      arms=str(rng.choice(["auto", "down", "up"])), slice_thickness_mm=thick, matrix=160,
                      fov_mm=float(rng.uniform(380, 520)) if region != "head" else float(rng.uniform(240, 320)),
                      contrast=str(rng.choice(["none", "arterial", "portal"])),
                      kernel=str(rng.choice(["soft", "standard", "sharp"])), noise_hu=float(rng.uniform(5, 30)),
                      table=bool(rng.random() < 0.8), variation=float(rng.uniform(0.7, 1.3)))
    ph = generate_phantom(p)
    r = ph.params
    return rng, ph.ct, ph.body_parts, ph.landmarks_mm, r.sex, r.age_years, r.weight_kg


def _sample(volume: tuple, source: str) -> dict:
    """A ``*_volume`` result -> the network's slices and labels (``_pack``)."""
    rng, ct, parts, lm, sex, age, weight = volume
    x, z = prepare_slices(ct.hu, ct.affine_lps)
    return _pack(x, z, parts, lm, sex, age, weight, rng, source)


def procedural_sample(seed: int) -> dict:
    return _sample(procedural_volume(seed), "procedural")


def icrp_volume(seed: int):
    """(rng, CTVolume, body parts per slice, landmarks, sex, NaN age, weight) of a random ICRP-110 variant."""
    from models.phantoms import icrp110

    rng = np.random.default_rng(seed)
    phantom = "AM" if rng.random() < 0.5 else "AF"
    p = icrp110.random_params(rng, pixel_mm=2.5, matrix=192)
    top = 1768.0 * p.scale_z
    if rng.random() < 0.35:
        p.slice_thickness_mm = float(rng.choice([3.0, 5.0]))
    else:
        length = float(rng.uniform(200, 700))
        lo = float(rng.uniform(-50, top - 100))
        p.z_range_mm = (lo, lo + length)
    s = icrp110.synthesize_ct(phantom, p)
    return rng, s.ct, s.body_parts, s.landmarks_mm, s.sex, np.nan, s.weight_kg


def icrp_sample(seed: int) -> dict:
    return _sample(icrp_volume(seed), "icrp110")


# landmarks whose neighbourhood the first model confused most (knee / thigh / lower leg, neck / thyroid,
# hips, ankles): the "focus" ICRP-110 crops are centred on one of them
FOCUS_LANDMARKS = ("knees", "knees", "ankles", "ischial_tuberosity", "thyroid_bottom", "thyroid_top", "skull_base",
                   "lung_apex", "lowest_rib", "iliac_crest")


def icrp_focus_volume(seed: int):
    """As ``icrp_volume`` but a short scan (120-400 mm) centred near a landmark of ``FOCUS_LANDMARKS`` and a
    wider height range (scale 0.85-1.15): more examples of the regions with few landmark transitions."""
    from models.phantoms import icrp110
    from operators.graynet_range.reference import reference_landmarks as ref

    rng = np.random.default_rng(seed)
    phantom = "AM" if rng.random() < 0.5 else "AF"
    p = icrp110.random_params(rng, pixel_mm=2.5, matrix=192)
    p.scale_z = float(rng.uniform(0.85, 1.15))
    name = str(rng.choice(FOCUS_LANDMARKS))
    centre = ref(phantom)[name] * p.scale_z + float(rng.uniform(-80, 80))
    length = float(rng.uniform(120, 400))
    top = 1768.0 * p.scale_z
    lo = float(np.clip(centre - length / 2, -20.0, top - length))
    p.z_range_mm = (lo, lo + length)
    s = icrp110.synthesize_ct(phantom, p)
    return rng, s.ct, s.body_parts, s.landmarks_mm, s.sex, np.nan, s.weight_kg


def icrp_focus_sample(seed: int) -> dict:
    return _sample(icrp_focus_volume(seed), "icrp110")


SAMPLERS = {"procedural": procedural_sample, "icrp": icrp_sample, "icrpfocus": icrp_focus_sample}
VOLUMES = {"procedural": procedural_volume, "icrp": icrp_volume, "icrpfocus": icrp_focus_volume}


def _job(args):
    kind, seed, out = args
    path = Path(out) / f"{kind}_{seed:06d}.npz"
    if path.exists():
        return str(path)
    t = time.time()
    d = SAMPLERS[kind](seed)
    np.savez_compressed(path.with_suffix(".tmp.npz"), **d)
    path.with_suffix(".tmp.npz").rename(path)
    print(f"{path.name}: {len(d['z'])} slices, {time.time() - t:.1f} s", flush=True)
    return str(path)


def jobs(n_procedural: int, n_icrp: int, seed: int, out: Path, n_focus: int = 0) -> list[tuple[str, int, str]]:
    """Seeds: procedural seed*100000 + i, ICRP seed*100000 + 50000 + i, ICRP focus crops seed*100000 + 70000 + i
    (training uses seed 0, evaluation 1)."""
    base = seed * 100000
    js = [("procedural", base + i, str(out)) for i in range(n_procedural)]
    js += [("icrp", base + 50000 + i, str(out)) for i in range(n_icrp)]
    js += [("icrpfocus", base + 70000 + i, str(out)) for i in range(n_focus)]
    return js


def generate(out: Path, n_procedural: int, n_icrp: int, seed: int = 0, workers: int = 2, n_focus: int = 0) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    js = jobs(n_procedural, n_icrp, seed, out, n_focus)
    # interleave the sources so that a partial run holds all of them
    groups = [[j for j in js if j[0] == k] for k in ("procedural", "icrp", "icrpfocus")]
    js = [j for row in itertools.zip_longest(*groups) for j in row if j is not None]
    if workers > 1:
        with Pool(workers, initializer=_init) as pool:
            paths = pool.map(_job, js, chunksize=1)
    else:
        _init()
        paths = [_job(j) for j in js]
    return [Path(p) for p in paths]


def _init():
    import torch

    torch.set_num_threads(1)


def load(paths) -> dict[str, np.ndarray]:
    """Concatenate sample files into per-slice arrays (x, parts, sex, age, weight, ref_z, sample index)."""
    cols = {k: [] for k in ("x", "parts", "ref_z", "z", "sex", "age", "weight", "sample", "icrp")}
    for i, p in enumerate(paths):
        d = np.load(p)
        n = len(d["z"])
        for k in ("x", "parts", "ref_z", "z"):
            cols[k].append(d[k])
        for k in ("sex", "age", "weight"):
            cols[k].append(np.full(n, d[k], np.float32))
        cols["sample"].append(np.full(n, i, np.int32))
        cols["icrp"].append(np.full(n, str(d["source"]) == "icrp110", bool))
    return {k: np.concatenate(v) for k, v in cols.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/graynet_data")
    ap.add_argument("--procedural", type=int, default=120)
    ap.add_argument("--icrp", type=int, default=40)
    ap.add_argument("--focus", type=int, default=0, help="ICRP-110 crops centred on hard landmarks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    t = time.time()
    paths = generate(Path(a.out), a.procedural, a.icrp, a.seed, a.workers, a.focus)
    print(f"{len(paths)} samples in {time.time() - t:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
