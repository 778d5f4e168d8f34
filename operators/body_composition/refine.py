"""Native-resolution refinement of the body-composition network: the network (4 mm pixels, 5 mm slices) decides
the *region* (which class a voxel's neighbourhood belongs to), the CT's own Hounsfield units at native
resolution decide the *tissue*, as in the paper's labelling (papers/body-composition-3d-unet.txt: thresholds
muscle -29..150 HU, fat -190..-30 HU, bone > 250 HU, then region rules). Pure numpy / scipy / torch.

Per voxel: HU type t (air/gas < -190, fat -190..-30, soft -29..150, dense 150..250, bone > 250 HU) and the
network's class probabilities P (softmax, interpolated from the model grid); label = argmax_c W[t, c] * P[c]
(``HU_WEIGHTS``: which classes a voxel of that HU can belong to). So a fat voxel is never muscle, a
muscle-HU voxel is never fat, and where the network's region is uncertain (its 4 mm boundaries) the HU decides.
P is mixed with 10 % of its in-plane Gaussian blur (8 mm): where the network is sure of a class the HU rules
out, the allowed class that is nearest in space wins.
Region rules (as the phantom labels and the paper define the classes):

* body: CT > -500 HU, holes filled per slice (lungs, bowel gas are inside the body); dense voxels (> 150 HU)
  that the network calls outside the body (the table) and voxels it is sure are outside (P(background) > 0.95:
  blankets, tubes) are removed;
* skin: the outer in-plane rim of the body, ``SKIN_MM`` (2 mm, at least one voxel) thick, where the tissue
  under it is soft tissue or fat (the procedural phantom's rule, models/phantoms/anatomy.py ``skin``);
* bone: bone HU where the network's bone region outweighs contrast-filled vessels (IO), plus marrow: per slice
  the holes enclosed by bone (not the spinal canal or cranial cavity: holes labelled CNS or IO stay);
* CNS: anatomical rules, not the network (which has hardly learnt the class): the cranial cavity and the
  spinal canal enclosed by bone (operators/body_composition/cns.py); the network's CNS weight is 0, so where it
  says CNS the next allowed class wins, and CNS voxels the rule finds are never turned into marrow;
* abdominal visceral vs subcutaneous fat, internal organs: the network's region, restricted by HU; no
  AVF from the first slice (inferior to superior) with at least half the scan's largest lung area upwards
  (mediastinal, epicardial, apical and neck fat is IO).

The probabilities are interpolated in z on the model grid, in plane onto a grid of at most 2x the model's
resolution (about 2 mm), and read back at native resolution by nearest neighbour: boundaries between classes of
*different* HU type follow the native CT exactly; boundaries between classes of the same HU type (muscle / IO,
SF / AVF) are known to about 1-2 mm.

    labels = refine_to_native(grid, logits, hu)        # logits (8, Z', Y', X') on the model grid -> uint8 (z, y, x)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from operators.body_composition.cns import cns_mask
from operators.common.labels import BODY_COMPOSITION
from operators.common.morphology import BODY_HU, INPLANE_4, fill_holes_per_slice

ID = {lab.name: lab.id for lab in BODY_COMPOSITION}
N_CLASSES = 8
HU_TYPE_EDGES = (-190.0, -30.0, 150.0, 250.0)  # paper thresholds (fat -190..-30, muscle -29..150, bone > 250)
HU_TYPES = ("air_gas", "fat", "soft", "dense", "bone")
SKIN_MM = 2.0
CONTEXT_SIGMA = 2.0  # model-grid voxels (8 mm): in-plane blur of the probabilities mixed in as context
CONTEXT_WEIGHT = 0.1

# W[t, c]: weight of class c for a voxel of HU type t (columns: background, skin, bone, muscle, AVF, SF, IO, CNS).
# 0 = impossible; skin comes from the rim rule only; background from the body mask only. Muscle only from
# -29..150 HU (the paper's threshold and the usual SMA definition): an enhanced kidney cortex or vessel above
# 150 HU next to psoas is never muscle, whatever the network's region says.
HU_WEIGHTS = np.array([
    # bg  skin  bone  muscle AVF   SF    IO    CNS (from the anatomical rule only: cns.py)
    [0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 1.0, 0.0],     # air / gas < -190 HU: lungs, bowel gas (IO)
    [0.0, 0.0, 0.05, 0.0, 1.0, 1.0, 0.5, 0.0],    # fat -190..-30: SF / AVF by region; marrow; organ fat (IO)
    [0.0, 0.0, 0.1, 1.0, 0.0, 0.0, 1.0, 0.0],     # soft -29..150: muscle / IO by region; discs, cartilage
    [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0, 0.0],     # dense 150..250: bone edges, enhanced organs and vessels
    [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0],     # bone > 250: bone, or contrast-filled vessels (IO)
], np.float32)


def hu_type(hu: np.ndarray) -> np.ndarray:
    """uint8 HU type (index into ``HU_TYPES``) per voxel: < -190 air / gas, -190..-30 fat, -29..150 soft,
    151..250 dense, > 250 bone (the paper's closed intervals on integer HU)."""
    t = (hu >= HU_TYPE_EDGES[0]).astype(np.uint8)
    for e in HU_TYPE_EDGES[1:]:
        t += hu > e
    return t


def _upsample_index(n_native: int, n_up: int) -> np.ndarray:
    return np.minimum(((np.arange(n_native) + 0.5) * n_up / n_native).astype(np.int64), n_up - 1)


def body_mask(hu: np.ndarray, p_bg: np.ndarray) -> np.ndarray:
    """Body of a (z, y, x) slab: CT > ``BODY_HU`` without what the network puts outside (P(background) > 0.5)
    and that is dense (> 150 HU: the table), and without what it is sure is outside (P > 0.95); in-plane
    components that are outside on average (the table, cables) are dropped; holes filled per slice (lungs,
    bowel gas)."""
    outside = (p_bg > 0.95) | ((p_bg > 0.5) & (hu > 150.0))
    m = (hu > BODY_HU) & ~outside
    lab, n = ndimage.label(m, structure=INPLANE_4)
    if n:
        size = np.bincount(lab.ravel(), minlength=n + 1)
        mean_bg = np.bincount(lab.ravel(), weights=p_bg.ravel(), minlength=n + 1) / np.maximum(size, 1)
        keep = mean_bg <= 0.5
        keep[0] = False
        m = keep[lab]
    return fill_holes_per_slice(m)


def skin_rim(body: np.ndarray, spacing_yx_mm, skin_mm: float = SKIN_MM) -> np.ndarray:
    """Outer in-plane rim of a (z, y, x) body mask, ``skin_mm`` thick (city-block erosion, at least 1 voxel)."""
    n = max(1, int(round(skin_mm / min(spacing_yx_mm))))
    inner = ndimage.binary_erosion(body, structure=INPLANE_4, iterations=n, border_value=0)
    return body & ~inner


def fill_marrow(labels: np.ndarray) -> None:
    """Per slice, holes enclosed by bone become bone unless labelled CNS (the anatomical rule: spinal canal,
    cranial cavity), IO (vessels) or background; in place."""
    bone = labels == ID["bone"]
    holes = fill_holes_per_slice(bone) & ~bone
    keep = np.zeros(N_CLASSES, bool)
    keep[[0, ID["central_nervous_system"], ID["internal_organs"]]] = True
    holes &= ~keep[labels]
    labels[holes] = ID["bone"]


def no_visceral_fat_in_chest(labels: np.ndarray, hu: np.ndarray, spacing_yx_mm, min_lung_cm2: float = 50.0,
                             fraction: float = 0.5) -> None:
    """AVF only below the diaphragm (the paper's definition): from the most inferior slice whose lung area (body
    voxels < -500 HU labelled IO) is at least ``fraction`` of the scan's largest (and the scan has lungs,
    > ``min_lung_cm2``) up to the top of the scan, fat the network called AVF is mediastinal / epicardial fat,
    or deep fat of the lung apices and neck: IO (the phantom's class for fat inside the body wall outside the
    abdominal cavity). Slices below that one (the lung bases beside the upper abdomen) keep their AVF. In place,
    (z, y, x) canonical (z inferior -> superior)."""
    px_cm2 = float(spacing_yx_mm[0] * spacing_yx_mm[1]) / 100.0
    lung = ((labels == ID["internal_organs"]) & (hu < BODY_HU)).sum(axis=(1, 2)) * px_cm2
    if lung.max() < min_lung_cm2:
        return
    k0 = int(np.nonzero(lung >= fraction * lung.max())[0][0])
    above = labels[k0:]
    above[above == ID["abdominal_visceral_fat"]] = ID["internal_organs"]


def _weighted_argmax(up: torch.Tensor) -> np.ndarray:
    """(z, C, y, x) probabilities -> (z, y, x, T) uint8: per HU type t, argmax_c HU_WEIGHTS[t, c] * P[c]
    (a running maximum over the few classes each type allows, on contiguous per-class planes)."""
    p = np.ascontiguousarray(up.permute(1, 0, 2, 3).numpy())  # (C, z, y, x)
    out = np.zeros(p.shape[1:] + (len(HU_TYPES),), np.uint8)
    for t in range(len(HU_TYPES)):
        classes = np.nonzero(HU_WEIGHTS[t])[0]
        best = p[classes[0]] * HU_WEIGHTS[t, classes[0]]
        arg = np.full(best.shape, classes[0], np.uint8)
        for c in classes[1:]:
            v = p[c] * HU_WEIGHTS[t, c]
            better = v > best
            np.maximum(best, v, out=best)
            arg[better] = c
        out[..., t] = arg
    return out


def _inplane_box(mask2d: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask2d.any(axis=1))[0], np.nonzero(mask2d.any(axis=0))[0]
    if not len(rows):
        return slice(0, 0), slice(0, 0)
    ny, nx = mask2d.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, ny)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, nx)))


def refine_to_native(grid, logits, hu: np.ndarray, chunk: int = 16, max_up: int = 2) -> np.ndarray:
    """Model-grid logits (8, Z', Y', X') + native HU (z, y, x) -> uint8 BODY_COMPOSITION labels on the native grid.

    ``grid``: the preprocess.ModelGrid the logits were computed on; ``max_up``: the in-plane probability grid is
    at most ``max_up`` times the model grid (and never finer than the CT). Work is restricted to the in-plane
    box of everything above ``BODY_HU`` (plus a margin)."""
    lg = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
    if lg.shape[0] != N_CLASSES:
        raise ValueError(f"expected {N_CLASSES} logit channels, got {lg.shape[0]}")
    cz, cy, cx = grid.can_shape
    prob = torch.softmax(lg, 0)
    # neighbourhood context: where the network is sure of a class the HU rules out, the allowed class nearest
    # in space wins (not an arbitrary one among near-zero probabilities)
    ctx = ndimage.gaussian_filter(prob.numpy(), sigma=(0, 0, CONTEXT_SIGMA, CONTEXT_SIGMA), mode="nearest")
    prob = (prob + CONTEXT_WEIGHT * torch.from_numpy(ctx)) / (1.0 + CONTEXT_WEIGHT)
    pz = F.interpolate(prob[None], size=(cz, prob.shape[2], prob.shape[3]), mode="trilinear",
                       align_corners=False)[0]  # (C, cz, my, mx)
    uy, ux = min(cy, max_up * prob.shape[2]), min(cx, max_up * prob.shape[3])
    hu_can = grid.canonical(hu)
    dy, dx = grid.can_spacing[1], grid.can_spacing[2]
    n_rim = max(1, int(round(SKIN_MM / min(dy, dx))))
    by, bx = _inplane_box(np.asarray((hu_can > BODY_HU).any(axis=0)), margin=n_rim + 2)
    out = np.zeros((cz, cy, cx), np.uint8)
    if by.stop <= by.start or bx.stop <= bx.start:
        return grid.native(out)
    iy, ix = _upsample_index(cy, uy)[by], _upsample_index(cx, ux)[bx]
    uy0, ux0 = int(iy[0]), int(ix[0])
    iy, ix = iy - uy0, ix - ux0
    uys, uxs = slice(uy0, uy0 + int(iy[-1]) + 1), slice(ux0, ux0 + int(ix[-1]) + 1)
    crop = np.zeros((cz, by.stop - by.start, bx.stop - bx.start), np.uint8)
    body = np.zeros(crop.shape, bool)
    for k in range(0, cz, chunk):
        sl = pz[:, k:k + chunk].permute(1, 0, 2, 3)  # (z, C, my, mx)
        up = F.interpolate(sl, size=(uy, ux), mode="bilinear", align_corners=False)[:, :, uys, uxs]
        per_type = _weighted_argmax(up)  # (z, uy', ux', T)
        h = np.ascontiguousarray(hu_can[k:k + chunk, by, bx], dtype=np.float32)
        zi = np.arange(h.shape[0])[:, None, None]
        lab = per_type[zi, iy[None, :, None], ix[None, None, :], hu_type(h)]  # nearest, by HU type
        bg = up[:, 0].numpy()[zi, iy[None, :, None], ix[None, None, :]]
        body[k:k + chunk] = body_mask(h, bg)
        lab[~body[k:k + chunk]] = 0
        crop[k:k + chunk] = lab
    crop[cns_mask(hu_can[:, by, bx], body, (grid.can_spacing[0], dy, dx))] = ID["central_nervous_system"]
    fill_marrow(crop)
    no_visceral_fat_in_chest(crop, hu_can[:, by, bx], (dy, dx))
    rim = skin_rim(body, (dy, dx))
    soft_or_fat = np.isin(crop, [ID["muscle"], ID["abdominal_visceral_fat"], ID["subcutaneous_fat"],
                                 ID["internal_organs"]])
    crop[rim & soft_or_fat] = ID["skin"]
    out[:, by, bx] = crop
    return grid.native(out)
