"""Anchor-organ post-processing of an organ label map (papers/multi-organ-resunet.txt, "organ-specific
post-processing"): the masks of six anchor organs (liver, spleen, lungs, femoral heads, urinary bladder,
kidneys), and the eyes for the small head organs, bound where the other organs can be, and connected-component
cleanup removes scattered false positives. Pure numpy / scipy.

    out, report = postprocess(labels, affine_lps)                      # all rules and cleanups enabled
    out, report = postprocess(labels, affine_lps, enabled={"spleen": True, "colon": False})
    report["spleen"]  # {"rule": "...", "removed_voxels": n, "bounds_mm": {...}, "skipped": [...]}

Order: (1) anchors are cleaned by connected components (largest ``N_COMPONENTS``; the lungs first, because the
liver's and the spleen's component must reach up to the lung bases: ``UNDER_DIAPHRAGM_MM``); (2) their craniocaudal
extents (patient z, mm, superior positive) and left-right centroids are measured on the cleaned masks (also for
an anchor whose own post-process is disabled: its voxels then stay, but stray components do not move its extent); (3) the anchors lose the voxels
outside their ``RULES`` bounds (set by the other anchors), the extents are measured again, and every other
enabled organ loses the voxels outside its bounds; (4) connected-component cleanup of the other organs. A bound
whose anchor is absent from the label map (not segmented, outside the scan) is skipped: the organ is then left
as it is, never emptied for lack of an anchor. An organ that a rule would empty entirely is kept unchanged and
reported (the anchor is more likely wrong than the whole organ), except the lenses: a "lens" nowhere within 10 mm
of the eyes is a wrong mask (the lens model is weak, the eyes' strong), and removing it makes the lenses "not
found" rather than a dose computed on the nasal cavity.

Rules (anchor extents: ``top`` = most superior voxel, ``bottom`` = most inferior, ``mid`` = midpoint; offsets in
mm; x: patient left positive, as LPS). Margins are generous: a rule is meant to remove blobs far from the
organ, not to trim its edges.

========================  ===============================================  =======================================
organ                     lower bound (z >=)                               upper bound (z <=) / side
========================  ===============================================  =======================================
liver                     femoral_heads top                                lungs top
spleen                    femoral_heads top                                lungs top; left of the liver centroid
kidneys                   femoral_heads top                                lungs top
urinary_bladder           femoral_heads bottom - 40                        kidneys bottom; femoral_heads top + 150
femoral_heads             -                                                kidneys bottom; liver bottom
lungs                     femoral_heads top + 100                          -
heart                     kidneys mid; liver top - 80                      lungs top
pancreas                  kidneys bottom - 30; femoral_heads top           lungs top; kidneys top + 40
gallbladder               liver bottom - 40                                liver top - 30 (inferior liver);
                                                                           right of the spleen centroid
adrenal_glands            kidneys mid                                      kidneys top + 40
esophagus                 kidneys mid                                      lungs top + 130; eyes bottom - 40
stomach                   femoral_heads top                                liver top + 30
colon                     femoral_heads bottom - 60                        liver top + 20
small_intestine           femoral_heads bottom - 60                        liver top
rectum                    femoral_heads bottom - 100                       femoral_heads top + 120; kidneys bottom
gi_tract (duodenum)       kidneys bottom - 30                              kidneys top + 30
thymus                    liver top - 20                                   lungs top + 30
aorta                     femoral_heads top                                lungs top + 60
inferior_vena_cava        femoral_heads top                                lungs top
spinal_cord               kidneys bottom - 30                              -
brain, eyes               lungs top + 60                                   -
lenses                    lungs top + 60; eyes bottom - 10                 eyes top + 10
optic_nerves              lungs top + 60; eyes bottom - 15                 eyes top + 20
pituitary_gland           lungs top + 60; eyes bottom - 25                 eyes top + 20
trachea                   kidneys top; liver top - 40                      lungs top + 150; eyes bottom - 40
bones                     -                                                -
========================  ===============================================  =======================================

Connected components kept per organ (``N_COMPONENTS``): 2 for paired organs (lungs, kidneys, femoral heads,
adrenals, eyes, lenses, optic nerves) and for the liver and spleen (a model that misses a band of the organ splits
it into an upper and a lower part: the real Siemens chest series' spleen, 57 + 49 mL at the same place), none (no cleanup) for organs that are legitimately fragmented in axial CT
(bones, colon, small intestine, gi_tract; esophagus, often split at the hiatus by partial volume), else 1. A second component of a paired organ is kept only if it
holds at least 10 % of the first one's voxels and overlaps its craniocaudal extent (the two kidneys, lungs or
femoral heads lie side by side). Connectivity: 26-neighbourhood in 3-D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from operators.common.labels import ORGAN_BY_NAME

# the paper's six anchors, and the eyes for the small head organs (lenses, optic nerves, pituitary gland), whose
# models fire on look-alikes far from the orbits (a "lens" in the centre of the brain or in the neck) where no trunk
# anchor is in a head scan
ANCHORS = ("liver", "spleen", "lungs", "femoral_heads", "urinary_bladder", "kidneys", "eyes")


@dataclass(frozen=True)
class Bound:
    anchor: str
    where: str  # "top" | "bottom" | "mid" (craniocaudal) or "centroid_x"
    offset_mm: float = 0.0


@dataclass(frozen=True)
class Rule:
    z_min: tuple[Bound, ...] = ()  # z >= every available bound
    z_max: tuple[Bound, ...] = ()  # z <= every available bound
    left_of: tuple[Bound, ...] = ()  # x >= bound (patient left of it)
    right_of: tuple[Bound, ...] = ()  # x <= bound
    near: tuple[tuple[str, float], ...] = ()  # (anchor, mm): within that distance of the anchor's mask (3-D)
    # the rule may remove the whole organ (it becomes "not found"): for a small organ bound to a reliable anchor,
    # where a mask wholly outside the bound is a wrong mask rather than a wrong anchor
    may_empty: bool = False


def B(anchor: str, where: str, offset_mm: float = 0.0) -> Bound:
    return Bound(anchor, where, float(offset_mm))


_HEAD = Rule(z_min=(B("lungs", "top", 60),))
# Around the eyes (test cases, ICRP-110 and procedural: lenses within the eyes' z extent, optic nerves within
# eyes bottom + 5 .. top, pituitary within eyes bottom .. top; oesophagus and trachea top >= 95 mm below the eyes'
# top), with margins
_NEAR_EYES = {"lenses": (-10, 10), "optic_nerves": (-15, 20), "pituitary_gland": (-25, 20)}
RULES: dict[str, Rule] = {
    "liver": Rule(z_min=(B("femoral_heads", "top"),), z_max=(B("lungs", "top"),)),
    "spleen": Rule(z_min=(B("femoral_heads", "top"),), z_max=(B("lungs", "top"),),
                   left_of=(B("liver", "centroid_x"),)),
    "kidneys": Rule(z_min=(B("femoral_heads", "top"),), z_max=(B("lungs", "top"),)),
    "urinary_bladder": Rule(z_min=(B("femoral_heads", "bottom", -40),),
                            z_max=(B("kidneys", "bottom"), B("femoral_heads", "top", 150))),
    "femoral_heads": Rule(z_max=(B("kidneys", "bottom"), B("liver", "bottom"))),
    "lungs": Rule(z_min=(B("femoral_heads", "top", 100),)),
    "heart": Rule(z_min=(B("kidneys", "mid"), B("liver", "top", -80)), z_max=(B("lungs", "top"),)),
    "pancreas": Rule(z_min=(B("kidneys", "bottom", -30), B("femoral_heads", "top")),
                     z_max=(B("lungs", "top"), B("kidneys", "top", 40))),
    "gallbladder": Rule(z_min=(B("liver", "bottom", -40),), z_max=(B("liver", "top", -30),),
                        right_of=(B("spleen", "centroid_x"),)),
    "adrenal_glands": Rule(z_min=(B("kidneys", "mid"),), z_max=(B("kidneys", "top", 40),)),
    "esophagus": Rule(z_min=(B("kidneys", "mid"),), z_max=(B("lungs", "top", 130), B("eyes", "bottom", -40))),
    "stomach": Rule(z_min=(B("femoral_heads", "top"),), z_max=(B("liver", "top", 30),)),
    "colon": Rule(z_min=(B("femoral_heads", "bottom", -60),), z_max=(B("liver", "top", 20),)),
    "small_intestine": Rule(z_min=(B("femoral_heads", "bottom", -60),), z_max=(B("liver", "top"),)),
    "rectum": Rule(z_min=(B("femoral_heads", "bottom", -100),),
                   z_max=(B("femoral_heads", "top", 120), B("kidneys", "bottom"))),
    "gi_tract": Rule(z_min=(B("kidneys", "bottom", -30),), z_max=(B("kidneys", "top", 30),)),
    "thymus": Rule(z_min=(B("liver", "top", -20),), z_max=(B("lungs", "top", 30),)),
    "aorta": Rule(z_min=(B("femoral_heads", "top"),), z_max=(B("lungs", "top", 60),)),
    "inferior_vena_cava": Rule(z_min=(B("femoral_heads", "top"),), z_max=(B("lungs", "top"),)),
    "spinal_cord": Rule(z_min=(B("kidneys", "bottom", -30),)),
    "brain": _HEAD, "eyes": _HEAD,
    **{o: Rule(z_min=(B("lungs", "top", 60), B("eyes", "bottom", lo)), z_max=(B("eyes", "top", hi),),
               near=(("eyes", 10.0),) if o == "lenses" else (),  # in the eyeball (its own voxels are not eye)
               may_empty=o == "lenses")
       for o, (lo, hi) in _NEAR_EYES.items()},
    "trachea": Rule(z_min=(B("kidneys", "top"), B("liver", "top", -40)),
                    z_max=(B("lungs", "top", 150), B("eyes", "bottom", -40))),
}

N_COMPONENTS: dict[str, int] = {
    **{o: 1 for o in ORGAN_BY_NAME},
    **{o: 2 for o in ("lungs", "kidneys", "femoral_heads", "adrenal_glands", "eyes", "lenses", "optic_nerves",
                      "liver", "spleen")},
    **{o: 0 for o in ("bones", "colon", "small_intestine", "gi_tract", "esophagus")},
}
SECOND_COMPONENT_MIN_FRACTION = 0.10
_STRUCT26 = np.ones((3, 3, 3), bool)
# Organs under the diaphragm: the liver's and the spleen's domes lie above the lungs' lowest point (the posterior
# costophrenic recess, about T12), so where the lungs are in the scan the component kept is the largest one whose
# top reaches at least this far (mm) below the lungs' bottom. The largest component alone is not enough: a large
# homogeneous pelvic mass that the liver model labels can outweigh the true liver (real abdomen-pelvis series).
UNDER_DIAPHRAGM_MM = {"liver": 30.0, "spleen": 30.0}


# --- geometry -----------------------------------------------------------------------------------------------

def _axes_of(affine_lps: np.ndarray) -> tuple[int, int]:
    """(array axis along patient z, array axis along patient x), by the largest affine component."""
    a = np.asarray(affine_lps, float)
    col_of_axis = {0: 2, 1: 1, 2: 0}
    zax = max(range(3), key=lambda ax: abs(a[2, col_of_axis[ax]]))
    xax = max(range(3), key=lambda ax: abs(a[0, col_of_axis[ax]]))
    if zax == xax:
        raise ValueError("affine has no distinct craniocaudal and left-right axes")
    return zax, xax


def _coords(affine_lps: np.ndarray, shape, axis: int, row: int) -> np.ndarray:
    """Patient coordinate ``row`` (0 x, 2 z) of each index along ``axis`` (through the volume centre)."""
    a = np.asarray(affine_lps, float)
    centre = (np.asarray(shape, float) - 1) / 2
    col_of_axis = {0: 2, 1: 1, 2: 0}
    idx = np.arange(shape[axis], dtype=float)
    base = a[row, 3] + sum(a[row, col_of_axis[ax]] * centre[ax] for ax in range(3) if ax != axis)
    return base + a[row, col_of_axis[axis]] * idx


@dataclass
class Extent:
    bottom: float
    top: float
    centroid_x: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.bottom + self.top)

    def value(self, where: str) -> float:
        return {"top": self.top, "bottom": self.bottom, "mid": self.mid, "centroid_x": self.centroid_x}[where]


def extent(mask: np.ndarray, z_mm: np.ndarray, x_mm: np.ndarray, zax: int, xax: int) -> Extent | None:
    """Craniocaudal extent and left-right centroid of a mask; None if empty."""
    if not mask.any():
        return None
    other = tuple(a for a in range(3) if a != zax)
    zs = z_mm[np.nonzero(mask.any(axis=other))[0]]
    counts_x = mask.sum(axis=tuple(a for a in range(3) if a != xax))
    cx = float((counts_x * x_mm).sum() / counts_x.sum())
    return Extent(float(zs.min()), float(zs.max()), cx)


def keep_largest_components(mask: np.ndarray, n: int, min_fraction: float = SECOND_COMPONENT_MIN_FRACTION,
                            z_axis: int | None = None, z_mm: np.ndarray | None = None,
                            top_at_least_mm: float | None = None) -> np.ndarray:
    """The ``n`` largest 26-connected components; the 2nd.. only if it holds >= ``min_fraction`` of the largest's
    voxels and (with ``z_axis``) overlaps the largest one's craniocaudal extent (paired organs lie side by side).
    With ``top_at_least_mm`` (and ``z_mm``, the patient z of each index along ``z_axis``) only components whose
    most superior voxel is at or above it compete; if none is, all do."""
    if n <= 0 or not mask.any():
        return mask
    lab, k = ndimage.label(mask, structure=_STRUCT26)
    if k <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    objs = ndimage.find_objects(lab)
    if top_at_least_mm is not None:
        reach = np.array([z_mm[o[z_axis]].max() >= top_at_least_mm for o in objs])
        if reach.any():
            sizes = np.where(reach, sizes, 0)
    order = np.argsort(sizes)[::-1][:n]
    order = order[sizes[order] > 0]
    first = objs[int(order[0])]
    keep = [int(order[0]) + 1]
    for i in order[1:]:
        if sizes[i] < min_fraction * sizes[order[0]]:
            continue
        if z_axis is not None:
            a, b = objs[int(i)][z_axis], first[z_axis]
            if a.stop <= b.start or b.stop <= a.start:
                continue
        keep.append(int(i) + 1)
    return np.isin(lab, keep)


# --- the post-process ---------------------------------------------------------------------------------------

def _bounds(rule: Rule, extents: dict[str, Extent | None]) -> tuple[dict, list[str]]:
    out, skipped = {}, []
    for kind, terms in (("z_min", rule.z_min), ("z_max", rule.z_max), ("x_min", rule.left_of),
                        ("x_max", rule.right_of)):
        vals = []
        for t in terms:
            e = extents.get(t.anchor)
            if e is None:
                skipped.append(t.anchor)
            else:
                vals.append(e.value(t.where) + t.offset_mm)
        if vals:
            out[kind] = max(vals) if kind in ("z_min", "x_min") else min(vals)
    return out, sorted(set(skipped))


def postprocess(labels: np.ndarray, affine_lps: np.ndarray, enabled: dict[str, bool] | None = None,
                rules: dict[str, Rule] | None = None, components: bool | dict[str, bool] = True,
                anchors=ANCHORS):
    """(cleaned label map, report) -- see the module docstring. ``enabled``: {organ: bool} (default all True
    for organs with a rule or a component count). ``components``: False to skip connected-component cleanup
    of all organs (or {organ: bool}). ``anchors``: the anchors whose extents bound other organs (an anchor left
    out counts as absent: use it for an anchor whose model is known to be unreliable)."""
    rules = RULES if rules is None else rules
    lab = np.array(labels, copy=True)
    zax, xax = _axes_of(affine_lps)
    z_mm = _coords(affine_lps, lab.shape, zax, 2)
    x_mm = _coords(affine_lps, lab.shape, xax, 0)
    present = {lab_.id: n for n, lab_ in ORGAN_BY_NAME.items()}
    boxes = ndimage.find_objects(lab)  # one pass: the bounding box of every label id (None if absent)
    box_of = {present[i + 1]: sl for i, sl in enumerate(boxes) if sl is not None and i + 1 in present}
    names_here = [n for n in ORGAN_BY_NAME if n in box_of]
    on = {n: True for n in ORGAN_BY_NAME}
    on.update(enabled or {})
    comp_on = (lambda n: bool(components)) if isinstance(components, bool) else (lambda n: components.get(n, True))
    report: dict[str, dict] = {}

    def sub_mask(name: str):
        """(view of lab inside the organ's bounding box, its mask, the box)."""
        sl = box_of[name]
        sub = lab[sl]
        return sub, sub == ORGAN_BY_NAME[name].id, sl

    anchor_kept: dict[str, np.ndarray] = {}  # cleaned anchor masks (in their boxes): extents come from these

    def cleanup(name: str) -> None:
        n = N_COMPONENTS.get(name, 1)
        if n <= 0 or not comp_on(name):
            return
        enabled_here = on.get(name, True)
        if not enabled_here and name not in ANCHORS:
            return
        sub, m, sl = sub_mask(name)
        lungs = anchor_extent("lungs") if name in UNDER_DIAPHRAGM_MM else None
        top_min = None if lungs is None else lungs.bottom - UNDER_DIAPHRAGM_MM[name]
        kept = keep_largest_components(m, n, z_axis=zax, z_mm=z_mm[sl[zax]], top_at_least_mm=top_min)
        if name in ANCHORS:
            anchor_kept[name] = kept
        if not enabled_here:  # a disabled anchor keeps its voxels; its extent still ignores stray components
            return
        removed = int(m.sum() - kept.sum())
        if removed:
            sub[m & ~kept] = 0
        entry = report.setdefault(name, {})
        entry["components_removed_voxels"] = removed
        if top_min is not None:
            entry["component_top_at_least_mm"] = round(top_min, 1)

    def anchor_extent(a: str) -> Extent | None:
        if a not in box_of or a not in anchors:
            return None
        _, m, sl = sub_mask(a)
        if a in anchor_kept:
            m = m & anchor_kept[a]
        return extent(m, z_mm[sl[zax]], x_mm[sl[xax]], zax, xax)

    def extents_now() -> dict[str, Extent | None]:
        return {a: anchor_extent(a) for a in ANCHORS}

    spacing = [float(np.linalg.norm(np.asarray(affine_lps, float)[:3, {0: 2, 1: 1, 2: 0}[ax]])) for ax in range(3)]

    def distance_to(anchor: str, sl: tuple[slice, ...], mm: float) -> np.ndarray:
        """Distance (mm) of every voxel of the box ``sl`` to the anchor's (cleaned) mask; the anchor is read in
        the box grown by ``mm`` so that it counts from outside the box too."""
        pad = [int(np.ceil(mm / sp)) + 1 for sp in spacing]
        big = tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(sl, pad, lab.shape, strict=True))
        a = lab[big] == ORGAN_BY_NAME[anchor].id
        if anchor in anchor_kept:  # its stray components do not count (kept mask: the anchor's own box)
            asl = box_of[anchor]
            inter = [slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(big, asl, strict=True)]
            kept = np.zeros(a.shape, bool)
            if all(i.start < i.stop for i in inter):
                kept[tuple(slice(i.start - b.start, i.stop - b.start) for i, b in zip(inter, big, strict=True))] = \
                    anchor_kept[anchor][tuple(slice(i.start - q.start, i.stop - q.start)
                                              for i, q in zip(inter, asl, strict=True))]
            a &= kept
        d = ndimage.distance_transform_edt(~a, sampling=spacing) if a.any() else np.full(a.shape, np.inf)
        return d[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sl, big, strict=True))]

    def apply_rule(name: str) -> None:
        rule = rules.get(name)
        if rule is None or not on.get(name, True):
            return
        bounds, skipped = _bounds(rule, extents)
        sub, m, sl = sub_mask(name)
        idx = np.nonzero(m)
        z, x = z_mm[sl[zax]][idx[zax]], x_mm[sl[xax]][idx[xax]]
        ok = np.ones(len(z), bool)
        if "z_min" in bounds:
            ok &= z >= bounds["z_min"]
        if "z_max" in bounds:
            ok &= z <= bounds["z_max"]
        if "x_min" in bounds:
            ok &= x >= bounds["x_min"]
        if "x_max" in bounds:
            ok &= x <= bounds["x_max"]
        for anchor, mm in rule.near:
            if extents.get(anchor) is None:
                skipped.append(anchor)
                continue
            ok &= distance_to(anchor, sl, mm)[idx] <= mm
            bounds[f"near_{anchor}"] = mm
        n_drop = int((~ok).sum())
        entry = report.setdefault(name, {})
        entry.update(bounds_mm={k: round(v, 1) for k, v in bounds.items()}, skipped_anchors=sorted(set(skipped)))
        if n_drop and not ok.any() and not rule.may_empty:
            entry["rule_removed_voxels"] = 0
            entry["kept_because"] = "the rule would remove the whole organ (anchor probably wrong)"
            return
        sub[tuple(i[~ok] for i in idx)] = 0
        entry["rule_removed_voxels"] = n_drop

    # (1) anchors first (the lungs before the organs under the diaphragm), (2) their extents
    for a in sorted(ANCHORS, key=lambda a: a != "lungs"):
        if a in box_of:
            cleanup(a)
    extents = extents_now()
    # (3) rules: anchors first (bounded by the other anchors), then the others with the anchors' new extents
    for name in names_here:
        if name in ANCHORS:
            apply_rule(name)
    extents = extents_now()
    for name in names_here:
        if name not in ANCHORS:
            apply_rule(name)
    # (4) component cleanup of the others
    for name in names_here:
        if name not in ANCHORS:
            cleanup(name)
    return lab, report


# Per-organ default (rule + component cleanup), chosen with benchmarks/eval_anchor_postprocess.py (criterion: mean
# Dice gain > 0.002 and no case worse by more than 0.01), re-measured for the 0.2.0 bundles:
# ``--mode models --n 8 --seed 7000`` (8 held-out procedural phantoms, whole / abdomen / chest / pelvis, GrayNet
# range as in the app; build/eval_anchor_postprocess_models_v020.json):
# * on: kidneys +0.006, urinary bladder +0.033, oesophagus +0.008, gallbladder +0.008, rectum +0.002 (no case
#   worse), thymus +0.003.
# * off, harmful: colon -0.077 and small intestine -0.113 mean (the rules cut true bowel loops: worst cases
#   -0.34 / -0.41), pancreas -0.020, aorta -0.037, adrenal glands -0.016, spinal cord +0.039 mean but one case
#   -0.076, inferior vena cava +0.010 mean but one case -0.096.
# * off, no measurable gain: heart +0.001, stomach +0.002, lungs +0.001, gi_tract, eyes,
#   brain, lenses, femoral heads -0.000, bones (no rule).
# * optic nerves, pituitary gland, trachea: the procedural phantom paints none of them, so no model figure; the
#   mechanism measured on corrupted ground truth (--mode corrupted, 8 phantoms, seed 5000: every organ with a rule
#   or a cleanup gained, 0.91-1.00 Dice after vs 0.74-0.91 before) -> on.
# * The eyes as the head's anchor (session 12): the 4 head cases of the organ-segmentation test set at full
#   resolution (all head organs segmented together, no GrayNet range): lenses 0.009 -> 0.056 and 0.046 -> 0.157 on
#   the two procedural heads (components alone had kept a false positive: 0.000), 0.000 either way on the two
#   ICRP-110 heads, where the eyes' model takes the lens voxels -> on. Oesophagus +0.005 to +0.030 on all four;
#   optic nerves and pituitary unchanged there. The 8 seed-7000 phantoms above (128 x 128): unchanged. With the
#   lens composited inside the eye (organ_segmentation.inference.INSIDE), lenses without -> with the post-process:
#   ICRP-110 0.085 -> 0.245, 0.069 -> 0.292; procedural 0.235 -> 0.735, 0.335 -> 0.680.
# * Liver and spleen (session 13): on, for real CT. On the real Toshiba abdomen-pelvis series (a large pelvic mass)
#   the liver model labels 4 L of the mass (3963 mL, one component) besides the true liver (2449 mL): the app reported
#   a 6.6 L liver. Largest-component cleanup alone would have kept the mass and dropped the liver; the component
#   that reaches the lung bases (UNDER_DIAPHRAGM_MM) is the liver (2449 mL kept); the spleen 632 -> 322 mL. Two
#   components (N_COMPONENTS): the real Siemens spleen falls into an upper and a lower part (57 + 49 mL). Synthetic
#   (--mode models --n 8 --seed 7000): liver 0.9388 -> 0.9399, spleen 0.8765 either way, no case worse.
_ON = ("kidneys", "urinary_bladder", "esophagus", "gallbladder", "rectum", "thymus", "optic_nerves",
       "pituitary_gland", "trachea", "lenses", "liver", "spleen")
DEFAULT_ENABLED: dict[str, bool] = {o: o in _ON for o in ORGAN_BY_NAME}
DEFAULT_ANCHORS: tuple[str, ...] = ANCHORS
