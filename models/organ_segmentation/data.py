"""Training and test data of the per-organ 2D Res-UNets: synthetic CT with organ labels, reproducible by seed.

Cases (``case_specs``) come from two generators:

* ICRP-110 (``models.phantoms.icrp110``): AM or AF, ``icrp110.random_params`` variation (build 0.85-1.35,
  height 0.9-1.1, smooth in-plane deformation up to 6 mm, contrast none / arterial / portal, lung density,
  HU jitter and scanner offset, organ texture, in-plane blur, correlated noise 8-40 HU, table) with organ HU
  calibrated to ct-realism.md (``calibrate_hu``), pixels of 1.2-1.8 mm, slices of 2, 3 or 5 mm, over one of
  five scan regions (head, neck-chest, chest-abdomen, abdomen-pelvis, trunk) placed from the phantom's
  landmarks. Labels: ``icrp110.organ_labels`` resampled through the same coordinates as the HU.
* The procedural phantom (``models.phantoms.generate_phantom``): random sex, age (10 % children 8-17 years,
  else 18-85), BMI 17-40, region (head, chest, abdomen, pelvis), contrast phase, kernel (soft, standard,
  sharp), slice thickness 2, 3 or 5 mm, matrix 384 over the region's field of view. Labels: ``ph.organs``.

Each case is turned into network inputs with the operator's own preprocessing
(``operators.organ_segmentation.preprocess``: canonical orientation, one body box per volume, resize to
224 x 304, window, 240 levels): three window images (soft, lung, bone; uint8 levels 0..239) per slice and
a per-slice bit mask of the organs (bit ``id - 1`` of ALL_ORGANS; a label is resampled like the image,
linear, and kept where >= 0.5). Containers include their contents (``labels.organ_mask``: eyes include the
lenses). Thin-slice cases keep every n-th slice so that kept slices are >= 4 mm apart. Cases are cached as
compressed npz under ``build/organ_seg/cases`` (gitignored); test cases also keep the full-resolution HU and
labels (canonical layout) for the end-to-end evaluation on the original grid.

Train and test cases never share a seed: the test set (``case_specs("test")``) holds AM and AF variants and
procedural cases of both sexes drawn from a different seed stream.

    python -m models.organ_segmentation.data --split train   # generate / cache the cases (single thread)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.npz_io import save_npz_atomic
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME, organ_mask
from operators.organ_segmentation import preprocess as pp

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "organ_seg"
WINDOW_NAMES = ("soft", "lung", "bone")
MIN_SLICE_GAP_MM = 4.0
N_TRAIN = {"icrp": 72, "phantom": 96}
ICRP_REGIONS = {  # (inferior landmark, offset mm, superior landmark, offset mm)
    "head": ("mandible_bottom", -40.0, "vertex", 10.0),
    "neck_chest": ("diaphragm_dome", -60.0, "skull_base", 0.0),
    "chest_abdomen": ("iliac_crest", 0.0, "lung_apex", 30.0),
    "abdomen_pelvis": ("ischial_tuberosity", -60.0, "diaphragm_dome", 40.0),
    "trunk": ("ischial_tuberosity", -60.0, "lung_apex", 40.0),
}


@dataclass(frozen=True)
class CaseSpec:
    name: str
    kind: str  # "icrp" | "phantom"
    seed: int
    phantom: str = ""  # AM | AF for ICRP cases
    region: str = ""


def case_specs(split: str, n_icrp: int | None = None, n_phantom: int | None = None) -> list[CaseSpec]:
    """The cases of ``split`` ("train" or "test"), deterministic. Train: ``N_TRAIN`` ICRP cases (AM and AF
    alternating) and procedural cases, seeds 1000+; test: AM and AF twice each (different regions) and four
    procedural cases, seeds 9000+."""
    if split == "train":
        n_icrp = N_TRAIN["icrp"] if n_icrp is None else n_icrp
        n_phantom = N_TRAIN["phantom"] if n_phantom is None else n_phantom
        base = 1000
    elif split == "test":
        n_icrp = 4 if n_icrp is None else n_icrp
        n_phantom = 4 if n_phantom is None else n_phantom
        base = 9000
    else:
        raise ValueError(f"split must be train or test, got {split!r}")
    regions = list(ICRP_REGIONS)
    specs = []
    for i in range(n_icrp):
        ph = ("AM", "AF")[i % 2]
        region = ("trunk", "trunk", "head", "head")[i] if split == "test" and i < 4 else regions[(i // 2) % len(regions)]
        specs.append(CaseSpec(f"{split}_icrp{i:02d}_{ph}", "icrp", base + i, ph, region))
    for i in range(n_phantom):
        specs.append(CaseSpec(f"{split}_phantom{i:02d}", "phantom", base + 500 + i))
    return specs


# --- synthesis ----------------------------------------------------------------------------------------------

def _icrp_case(spec: CaseSpec, coarse: bool = False):
    from models.phantoms import icrp110

    rng = np.random.default_rng([spec.seed, 110])
    pixel = float(rng.uniform(1.2, 1.8)) * (3.0 if coarse else 1.0)
    p = icrp110.random_params(rng, calibrate_hu=True, pixel_mm=pixel, matrix=int(np.ceil(560.0 / pixel)),
                              slice_thickness_mm=float(rng.choice([2.0, 3.0, 5.0], p=[0.25, 0.35, 0.4])))
    lm = icrp110.landmarks_mm(spec.phantom)
    lo_name, lo_off, hi_name, hi_off = ICRP_REGIONS[spec.region]
    p.z_range_mm = ((lm[lo_name] + lo_off) * p.scale_z, (lm[hi_name] + hi_off) * p.scale_z)
    s = icrp110.synthesize_ct(spec.phantom, p)
    info = {"phantom": spec.phantom, "region": spec.region, "contrast": p.contrast,
            "slice_thickness_mm": p.slice_thickness_mm, "pixel_mm": round(pixel, 3),
            "noise_hu": round(p.noise_hu, 1), "scale_lr": round(p.scale_lr, 3), "scale_ap": round(p.scale_ap, 3),
            "deform_mm": round(p.deform_mm, 2)}
    return s.ct.hu, s.organs, s.ct.affine_lps, info


def phantom_params(spec: CaseSpec, coarse: bool = False):
    """The procedural phantom's ``PhantomParams`` of a case (random draw seeded by the case)."""
    from models.phantoms import PhantomParams

    rng = np.random.default_rng([spec.seed, 7])
    sex = str(rng.choice(["F", "M"]))
    age = float(rng.uniform(8, 17)) if rng.random() < 0.1 else float(rng.uniform(18, 85))
    bmi = float(rng.uniform(15, 24)) if age < 18 else float(rng.uniform(17, 40))
    region = str(rng.choice(["head", "chest", "abdomen", "pelvis"], p=[0.15, 0.3, 0.35, 0.2]))
    return PhantomParams(seed=spec.seed, sex=sex, age_years=round(age, 1), bmi=round(bmi, 1), region=region,
                         contrast=str(rng.choice(["none", "arterial", "portal"], p=[0.35, 0.25, 0.4])),
                         kernel=str(rng.choice(["soft", "standard", "sharp"], p=[0.3, 0.5, 0.2])),
                         slice_thickness_mm=float(rng.choice([2.0, 3.0, 5.0], p=[0.25, 0.35, 0.4])),
                         matrix=128 if coarse else 384)


def _phantom_case(spec: CaseSpec, coarse: bool = False):
    from models.phantoms import generate_phantom

    pp_ = phantom_params(spec, coarse)
    ph = generate_phantom(pp_)
    info = {"sex": pp_.sex, "age_years": pp_.age_years, "bmi": pp_.bmi, "region": pp_.region,
            "contrast": pp_.contrast, "kernel": pp_.kernel, "slice_thickness_mm": pp_.slice_thickness_mm}
    return ph.ct.hu, ph.organs, ph.ct.affine_lps, info


def synthesize_case(spec: CaseSpec, coarse: bool = False):
    """(hu (z, y, x) float32, ALL_ORGANS labels uint8, LPS affine, info dict) of one case; ``coarse``: pixels
    3x larger (a quick variant for tests, not cached)."""
    if spec.kind == "icrp":
        return _icrp_case(spec, coarse)
    if spec.kind == "phantom":
        return _phantom_case(spec, coarse)
    raise ValueError(f"unknown case kind {spec.kind!r}")


# --- to network resolution ------------------------------------------------------------------------------------

def spacing_yx(affine_c: np.ndarray) -> tuple[float, float]:
    """(row, column) spacing in mm of a canonical affine."""
    return float(np.linalg.norm(affine_c[:3, 1])), float(np.linalg.norm(affine_c[:3, 0]))


def slice_z_mm(affine_c: np.ndarray, ks) -> np.ndarray:
    """Patient z (mm) of canonical slices ``ks`` (axis 0 = affine column 2, k)."""
    return float(affine_c[2, 3]) + float(affine_c[2, 2]) * np.asarray(ks, float)


def window_images(hu_c: np.ndarray, box: pp.Box, slices=None) -> np.ndarray:
    """uint8 (3, z, 224, 304): the ``WINDOW_NAMES`` window levels (0..239) of canonical slices (``slices``, default
    all) through the operator's crop and resize."""
    n = hu_c.shape[0] if slices is None else len(slices)
    img = np.empty((len(WINDOW_NAMES), n, *pp.NET_SHAPE), np.uint8)
    for w, name in enumerate(WINDOW_NAMES):
        img[w] = np.round(pp.to_network(hu_c, box, pp.WINDOWS[name], slices=slices) * (pp.N_LEVELS - 1))
    return img


def net_case(hu: np.ndarray, organs: np.ndarray, affine: np.ndarray, keep_every: int = 1) -> dict:
    """Network-resolution arrays of one case through the operator's preprocessing: ``img`` uint8 (3, z, 224,
    304) window levels (soft, lung, bone), ``bits`` uint32 (z, 224, 304) organ bit masks, ``z_mm`` slice z
    (canonical order, inferior -> superior), ``box``."""
    hu_c, aff_c = pp.canonical(hu, affine)
    lab_c, _ = pp.canonical(organs, affine)
    box = pp.body_box(hu_c, spacing_yx(aff_c))
    ks = np.arange(0, hu_c.shape[0], keep_every)
    lab_k = np.ascontiguousarray(lab_c[ks])
    img = window_images(np.ascontiguousarray(hu_c[ks]), box)
    bits = np.zeros((len(ks), *pp.NET_SHAPE), np.uint32)
    for lab in ALL_ORGANS:
        m = organ_mask(lab_k, lab.name)
        zs = np.nonzero(m.any(axis=(1, 2)))[0]
        if not len(zs):
            continue
        sl = slice(zs[0], zs[-1] + 1)
        on = pp.to_network(m[sl].astype(np.float32), box, (0.0, 1.0)) >= 0.5
        bits[sl] |= on.astype(np.uint32) << np.uint32(lab.id - 1)
    z_mm = slice_z_mm(aff_c, ks)
    return {"img": img, "bits": bits, "z_mm": z_mm.astype(np.float32), "box": np.array(box, np.int32)}


def case_path(spec: CaseSpec, cache: Path = CACHE) -> Path:
    return cache / "cases" / f"{spec.name}.npz"


def build_case(spec: CaseSpec, cache: Path = CACHE, full_res: bool = False) -> Path:
    """Synthesise one case and cache it (no-op when cached). ``full_res`` also stores the canonical HU
    (int16) and labels for the end-to-end evaluation."""
    path = case_path(spec, cache)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    hu, organs, affine, info = synthesize_case(spec)
    dz = abs(float(affine[2, 2])) or float(np.linalg.norm(affine[:3, 2]))
    keep = 1 if full_res else max(int(np.ceil(MIN_SLICE_GAP_MM / dz - 1e-6)), 1)
    arrays = net_case(hu, organs, affine, keep_every=keep)
    extra = {}
    if full_res:
        hu_c, aff_c = pp.canonical(hu, affine)
        lab_c, _ = pp.canonical(organs, affine)
        extra = {"hu_c": np.clip(np.round(hu_c), -1024, 3071).astype(np.int16), "organs_c": lab_c,
                 "affine_c": aff_c}
    meta = {"spec": asdict(spec), "info": info, "keep_every": keep}
    return save_npz_atomic(path, meta=np.array(json.dumps(meta)), **arrays, **extra)


def load_case(spec_or_path) -> dict:
    path = spec_or_path if isinstance(spec_or_path, Path) else case_path(spec_or_path)
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


# --- per-organ slice sets -----------------------------------------------------------------------------------------

def organ_window_index(organ: str) -> int:
    return WINDOW_NAMES.index(pp.WINDOW_FAMILY.get(organ, "soft"))


def organ_slices(case: dict, organ: str, margin_mm: float = 30.0, max_pos: int = 40, max_neg: int = 6,
                 rng: np.random.Generator | None = None, all_windows: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (n, 224, 304) window levels, y bool (n, 224, 304)) of ``organ`` in one cached case: slices
    holding the organ (at most ``max_pos``, evenly spread) plus up to ``max_neg`` slices without it within
    ``margin_mm`` of its extent (the operator runs a model only over the organ's z range and a margin).
    ``all_windows``: x holds the three ``WINDOW_NAMES`` images, (n, 3, 224, 304), not the organ's window alone."""
    bit = np.uint32(1) << np.uint32(ORGAN_BY_NAME[organ].id - 1)
    on = (case["bits"] & bit) != 0
    present = on.any(axis=(1, 2))
    ks = np.nonzero(present)[0]
    if not len(ks):
        return np.zeros((0, *pp.NET_SHAPE), np.uint8), np.zeros((0, *pp.NET_SHAPE), bool)
    z = case["z_mm"]
    zlo, zhi = z[ks].min(), z[ks].max()
    neg = np.nonzero(~present & (z >= zlo - margin_mm) & (z <= zhi + margin_mm))[0]
    if len(ks) > max_pos:
        ks = ks[np.round(np.linspace(0, len(ks) - 1, max_pos)).astype(int)]
    if len(neg) > max_neg:
        rng = rng or np.random.default_rng(0)
        neg = np.sort(rng.choice(neg, max_neg, replace=False))
    sel = np.concatenate([ks, neg])
    if all_windows:
        return case["img"][:, sel].transpose(1, 0, 2, 3), on[sel]
    return case["img"][organ_window_index(organ)][sel], on[sel]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["train", "test", "all"], default="all")
    ap.add_argument("--cache", default=str(CACHE))
    args = ap.parse_args(argv)
    splits = ["test", "train"] if args.split == "all" else [args.split]
    for split in splits:
        for spec in case_specs(split):
            t0 = time.time()
            path = build_case(spec, Path(args.cache), full_res=(split == "test"))
            print(f"{spec.name}: {path.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
