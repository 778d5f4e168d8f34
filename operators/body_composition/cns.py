"""Central nervous system (CNS: brain and spinal cord with their CSF) by anatomical rules, as the paper's own
labelling step did ("region rules ... cranial cavity and spinal canal", papers/body-composition-3d-unet.txt) and
as the procedural phantom labels it (models/phantoms/tissues.py: brain grey / white matter, cerebellum,
brainstem, ventricles, CSF around the brain and in the spinal canal, spinal cord; all ``central_nervous_system``).
The network has hardly learnt the class (0.26 % of training voxels); these rules do not use its output.

On canonical (z inferior->superior, y anterior->posterior, x right->left) HU; "bone" here is HU > ``WALL_HU``
(the enclosing wall; partial-volume rims of thin laminae at 4-5 mm pixels stay above it).

* Spinal canal: per slice, the holes enclosed by bone, split where a hole also holds cancellous bone (the part
  below ``CANAL_MAX_HU``: the phantom's sacral canal shares its hole with the sacrum's cancellous bone), that are
  small (``CANAL_AREA_CM2``, at most ``CANAL_MAX_CM`` across), near the body's midline (``CANAL_MIDLINE_CM``),
  in the posterior half of the body, mostly soft tissue / CSF HU (mean at most ``CANAL_MEAN_HU``), with a
  vertebral body in front (solid bone: the wall and its holes of at most ``SOLID_HOLE_MAX_CM2``, over most of a
  strip ``BODY_STRIP_CM`` deep anterior to the hole); opened in plane by ``CANAL_OPEN_MM`` (the basivertebral
  vein's channel) and grown by one voxel of partial-volume rim (< ``CANAL_RIM_HU``). Femoral / humeral marrow
  (lateral, fat), the vertebral body's own marrow (nothing bony in front of it; an osteoporotic body's soft
  back half is denser than CSF), the pelvic ring and the rib cage (too large), the sternum (anterior) and a
  calcified aorta (no vertebral body in front) fail these gates. Slices where the ring is open (disc levels,
  foramina) are bridged along z by interpolating the signed distance of the canal on the nearest closed slices
  above and below (at most ``BRIDGE_MM``, the centres at most ``BRIDGE_SHIFT_CM`` apart), within non-bone
  voxels; open areas are never filled, except that a canal ending within ``EDGE_MM`` of the scan's first or
  last slice is carried on to it (the end slice's shape, within non-bone voxels). What remains must form a
  3-D connected tube at least ``TUBE_MIN_MM`` long.
* Cranial cavity: in head slices (body cross-section at most ``HEAD_MAX_CM2``), the holes of the skull
  (HU > ``SKULL_HU``) per slice, gaps up to about 2 ``SKULL_CLOSE_MM`` wide bridged (sutures, partial-volume
  breaks of a thin skull at coarse pixels, small foramina at the skull base), that are mostly brain / CSF HU
  (air split off: sinuses, mastoid cells; little fat: orbits), 3-D connected to a seed (holes of at least
  ``CAVITY_JUMP_FRACTION`` of the largest seed also across up to half the bridge distance of open slices,
  which are then bridged as for the canal), down to the last slice where the cavity is larger than
  ``CAVITY_FM_CM2`` (the foramen magnum; the canal rule goes on below), grown by one voxel of partial-volume
  rim (< ``CAVITY_RIM_HU``). A seed is a hole of at least
  ``SEED_MIN_CM2`` that fills at least ``SEED_BODY_FRACTION`` of the slice's body (the skull encloses nearly
  the whole head; the pelvic ring, marrow cavities and the rib cage do not).

Voxels of these regions with HU >= ``CNS_MIN_HU`` are CNS (epidural fat and air are not; in-plane holes of
the canal, noise, are filled).

    cns = cns_mask(hu, body, spacing_zyx_mm)       # canonical (z, y, x) HU and body mask -> bool (z, y, x)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from operators.common.morphology import INPLANE_4, disk, fill_holes_per_slice

WALL_HU = 200.0
CNS_MIN_HU = -50.0
SOFT_HU = (-50.0, 110.0)  # CSF, cord, brain with noise
FAT_HU = -50.0
AIR_HU = -200.0

CANAL_AREA_CM2 = (0.2, 8.0)
CANAL_MAX_HU = 70.0
CANAL_MEAN_HU = 60.0  # CSF / cord; the low-HU part of an osteoporotic vertebral body is denser
CANAL_RIM_HU = 100.0
CANAL_OPEN_MM = 2.5  # in-plane opening radius (where the pixels are at most half of it)
CANAL_MAX_CM = 4.0
CANAL_BOX_CM = 6.0
CANAL_MIDLINE_CM = 2.5
CANAL_SOFT_FRACTION = 0.6
BODY_STRIP_CM = (0.2, 1.2)  # depth of the strip anterior to the canal that must be enclosed bone
BODY_STRIP_HALF_WIDTH_CM = 0.5
BODY_STRIP_FRACTION = 0.6
SOLID_HOLE_MAX_CM2 = 30.0
BRIDGE_MM = 45.0
BRIDGE_SHIFT_CM = 1.5
WEAK_SLICE_FRACTION = 0.5
TUBE_MIN_MM = 20.0
EDGE_MM = 15.0

HEAD_MAX_CM2 = 450.0
SKULL_CLOSE_MM = 5.0
SKULL_HU = 130.0  # the skull wall: lower than WALL_HU, its partial-volume rim at coarse pixels
SEED_MIN_CM2 = 25.0
SEED_BODY_FRACTION = 0.35
CAVITY_SOFT_FRACTION = 0.7
CAVITY_FAT_FRACTION = 0.25
CAVITY_MIN_CM2 = 0.5
CAVITY_JUMP_FRACTION = 0.15
CAVITY_FM_CM2 = 12.0  # larger than the foramen magnum, the atlas ring and the spinal canal
CAVITY_RIM_HU = 400.0  # skull / brain partial-volume rim (cortical bone ~ 1000+ HU)
CAVITY_SHIFT_CM = 5.0  # bridging: the posterior fossa's centre lies well behind the cerebrum's

_Z6 = ndimage.generate_binary_structure(3, 1)


def _component_stats(lab: np.ndarray, n: int, hu: np.ndarray) -> dict[str, np.ndarray]:
    """Per-label (0..n) voxel count, centroid (z, y, x), mean HU and HU fractions of a labelled (z, y, x) array
    (label 0's entries are meaningless); only the labelled voxels are visited."""
    idx = np.nonzero(lab)
    li = lab[idx]
    area = np.bincount(li, minlength=n + 1).astype(np.float64)
    den = np.maximum(area, 1)
    out = {"area": area}
    for name, coord in zip("zyx", idx, strict=True):
        out[name] = np.bincount(li, weights=coord, minlength=n + 1) / den
    h = hu[idx]
    out["mean_hu"] = np.bincount(li, weights=h, minlength=n + 1) / den
    for name, m in (("soft", (h >= SOFT_HU[0]) & (h <= SOFT_HU[1])), ("air", h < AIR_HU),
                    ("fat", (h >= AIR_HU) & (h < FAT_HU))):
        out[name] = np.bincount(li, weights=m, minlength=n + 1) / den
    return out


def _body_axes(body: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice: body area (voxels), x centroid (the midline) and AP centre (half way between the body's
    anterior and posterior extent)."""
    area = body.sum(axis=(1, 2)).astype(np.float64)
    xs = np.arange(body.shape[2], dtype=np.float64)
    cx = (body.sum(axis=1) * xs).sum(axis=1) / np.maximum(area, 1)
    rows = body.any(axis=2)
    first = np.where(rows.any(axis=1), np.argmax(rows, axis=1), 0)
    last = np.where(rows.any(axis=1), body.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1), 0)
    return area, cx, (first + last) / 2.0


def _signed_distance(m: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~m) - ndimage.distance_transform_edt(m)


def _bridge(cand: np.ndarray, allowed: np.ndarray, dz_mm: float, dyx_mm: float,
            max_shift_cm: float = BRIDGE_SHIFT_CM) -> np.ndarray:
    """Fills runs of slices without the structure between two slices with it (at most ``BRIDGE_MM`` apart,
    centres at most ``max_shift_cm`` apart in plane) by interpolating the signed distance of the two; within
    ``allowed``. A slice whose area is under ``WEAK_SLICE_FRACTION`` of the largest on *both* sides (within the
    bridge distance) is a gap too (a remnant in an open slice); the interpolation is added to what it has."""
    out = cand.copy()
    max_gap = int(BRIDGE_MM / dz_mm)
    area = cand.sum(axis=(1, 2)).astype(np.float64)
    nz = len(area)
    below = np.array([area[max(k - max_gap, 0):k].max(initial=0.0) for k in range(nz)])
    above = np.array([area[k + 1:k + 1 + max_gap].max(initial=0.0) for k in range(nz)])
    ks = np.nonzero((area > 0) & (area >= WEAK_SLICE_FRACTION * np.minimum(below, above)))[0]
    for k1, k2 in zip(ks[:-1], ks[1:], strict=True):
        if k2 - k1 < 2 or k2 - k1 - 1 > max_gap:
            continue
        a, b = cand[k1], cand[k2]
        ca, cb = np.argwhere(a).mean(axis=0), np.argwhere(b).mean(axis=0)
        if np.hypot(*(ca - cb)) * dyx_mm > 10.0 * max_shift_cm:
            continue
        rows = np.nonzero((a | b).any(axis=1))[0]
        cols = np.nonzero((a | b).any(axis=0))[0]
        ys = slice(max(rows[0] - 2, 0), rows[-1] + 3)
        xs = slice(max(cols[0] - 2, 0), cols[-1] + 3)
        sa, sb = _signed_distance(a[ys, xs]), _signed_distance(b[ys, xs])
        for k in range(k1 + 1, k2):
            t = (k - k1) / (k2 - k1)
            out[k, ys, xs] |= (((1 - t) * sa + t * sb) <= 0) & allowed[k, ys, xs]
    return out


def spinal_canal(hu: np.ndarray, body: np.ndarray, spacing_zyx_mm) -> np.ndarray:
    """Bool (z, y, x) spinal canal of canonical HU (see the module docstring). The work is done on the box
    within ``CANAL_BOX_CM`` of the body's midline and behind ``CANAL_BOX_CM`` in front of its AP centre (the
    canal and its vertebra lie there; a hole cut by the box counts as open, which is conservative)."""
    dz, dy, dx = (float(s) for s in spacing_zyx_mm)
    out = np.zeros(hu.shape, bool)
    area, mid_x, ap_c = _body_axes(body)
    has = area > 0
    if not has.any():
        return out
    mx, my = int(round(10.0 * CANAL_BOX_CM / dx)), int(round(10.0 * CANAL_BOX_CM / dy))
    x0 = max(int(np.floor(mid_x[has].min())) - mx, 0)
    x1 = min(int(np.ceil(mid_x[has].max())) + mx + 1, hu.shape[2])
    y0 = max(int(np.floor(ap_c[has].min())) - my, 0)
    box = (slice(None), slice(y0, hu.shape[1]), slice(x0, x1))
    out[box] = _spinal_canal_box(np.ascontiguousarray(hu[box]), np.ascontiguousarray(body[box]),
                                 mid_x - x0, ap_c - y0, (dz, dy, dx))
    return out


def _spinal_canal_box(hu, body, mid_x, ap_c, spacing_zyx_mm) -> np.ndarray:
    dz, dy, dx = spacing_zyx_mm
    wall = (hu > WALL_HU) & body
    holes = fill_holes_per_slice(wall) & ~wall
    # solid bone: the wall and its small enclosed holes (marrow of a vertebral body, the sacrum), not the pelvic
    # inlet or the rib cage's interior
    hl, nh = ndimage.label(holes, structure=INPLANE_4)
    small = np.bincount(hl.ravel(), minlength=nh + 1) * (dy * dx / 100.0) <= SOLID_HOLE_MAX_CM2
    small[0] = False
    solid = wall | small[hl]
    del hl
    # the canal's contents (CSF, cord: < CANAL_MAX_HU) split from cancellous bone where both share a hole
    lab, n = ndimage.label(holes & (hu < CANAL_MAX_HU), structure=INPLANE_4)
    if n == 0:
        return np.zeros(hu.shape, bool)
    s = _component_stats(lab, n, hu)
    px_cm2 = dy * dx / 100.0
    area_cm2 = s["area"] * px_cm2
    zi = np.rint(s["z"]).astype(np.int64)
    ok = (area_cm2 >= CANAL_AREA_CM2[0]) & (area_cm2 <= CANAL_AREA_CM2[1])
    ok &= np.abs(s["x"] - mid_x[zi]) * dx <= 10.0 * CANAL_MIDLINE_CM
    ok &= s["y"] > ap_c[zi]
    ok &= (s["soft"] >= CANAL_SOFT_FRACTION) & (s["mean_hu"] <= CANAL_MEAN_HU)
    ok[0] = False
    boxes = ndimage.find_objects(lab)
    d0, d1 = (int(round(10.0 * c / dy)) for c in BODY_STRIP_CM)
    hw = max(1, int(round(10.0 * BODY_STRIP_HALF_WIDTH_CM / dx)))
    for i in np.nonzero(ok)[0]:
        zs, ys, xs = boxes[i - 1]
        if (ys.stop - ys.start) * dy > 10.0 * CANAL_MAX_CM or (xs.stop - xs.start) * dx > 10.0 * CANAL_MAX_CM:
            ok[i] = False
            continue
        # a vertebral body in front: solid bone over most of a strip anterior to the hole
        k, xc = zs.start, int(round(s["x"][i]))
        y1, y0 = ys.start - d0, ys.start - max(d1, d0 + 1)
        strip = solid[k, max(y0, 0):max(y1, 0), max(xc - hw, 0):xc + hw + 1]
        ok[i] = strip.size > 0 and strip.mean() >= BODY_STRIP_FRACTION
    cand = ok[lab]
    # thin protrusions (the basivertebral vein's channel into the vertebral body) off: in-plane opening
    r = int(CANAL_OPEN_MM / min(dy, dx))
    if r >= 1:
        cand = _open_per_slice(cand, r)
    # partial-volume rim of the canal (up to CANAL_RIM_HU) within the hole
    cand |= ndimage.binary_dilation(cand, structure=INPLANE_4) & holes & (hu < CANAL_RIM_HU)
    allowed = ~wall & (hu >= CNS_MIN_HU) & body
    tube = _bridge(cand, allowed, dz, min(dy, dx))
    # the canal goes on beyond the scan: where its end lies within EDGE_MM of the first / last slice, the end
    # slice's canal is carried on to that slice (within non-bone voxels)
    ks = np.nonzero(tube.any(axis=(1, 2)))[0]
    if len(ks):
        nz = tube.shape[0]
        if ks[0] * dz <= EDGE_MM:
            tube[:ks[0]] = tube[ks[0]][None] & allowed[:ks[0]]
        if (nz - 1 - ks[-1]) * dz <= EDGE_MM:
            tube[ks[-1] + 1:] = tube[ks[-1]][None] & allowed[ks[-1] + 1:]
    tl, nt = ndimage.label(tube, structure=np.ones((3, 3, 3), bool))
    if nt == 0:
        return tube
    zext = np.array([(sl[0].stop - sl[0].start) * dz for sl in ndimage.find_objects(tl)])
    keep = np.concatenate([[False], zext >= TUBE_MIN_MM])
    return keep[tl]


def _open_per_slice(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """In-plane binary opening with a disc of ``radius_px``."""
    return ndimage.binary_opening(mask, structure=disk(radius_px)[None])


def _holes_across_gaps(wall: np.ndarray, radius_px: int) -> np.ndarray:
    """Per slice, the holes of ``wall`` where gaps up to about 2 ``radius_px`` wide do not count: the holes of
    the wall grown by ``radius_px`` (4-neighbour steps), grown back by as many steps outside the wall (so the
    hole reaches the wall again but goes no deeper than that into a gap)."""
    r = radius_px
    pad = np.pad(wall, ((0, 0), (r, r), (r, r)))
    grown = ndimage.binary_dilation(pad, structure=INPLANE_4, iterations=r)
    inner = fill_holes_per_slice(grown) & ~grown
    back = ndimage.binary_dilation(inner, structure=INPLANE_4, iterations=r, mask=~pad)
    return back[:, r:-r, r:-r]


def cranial_cavity(hu: np.ndarray, body: np.ndarray, spacing_zyx_mm) -> np.ndarray:
    """Bool (z, y, x) cranial cavity (brain + CSF) of canonical HU (see the module docstring)."""
    dz, dy, dx = (float(s) for s in spacing_zyx_mm)
    px_cm2 = dy * dx / 100.0
    out = np.zeros(hu.shape, bool)
    b_area, _, _ = _body_axes(body)
    head = np.nonzero((b_area > 0) & (b_area * px_cm2 <= HEAD_MAX_CM2))[0]
    if not len(head):
        return out
    k0, k1 = int(head[0]), int(head[-1]) + 1
    sub_body = body[k0:k1]
    inplane = sub_body.any(axis=0)
    rows, cols = np.nonzero(inplane.any(axis=1))[0], np.nonzero(inplane.any(axis=0))[0]
    ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    h = hu[k0:k1, ys, xs]
    bd = sub_body[:, ys, xs]
    is_head = np.zeros(k1 - k0, bool)
    is_head[head - k0] = True
    wall = (h > SKULL_HU) & bd & is_head[:, None, None]
    holes = _holes_across_gaps(wall, max(1, int(np.ceil(SKULL_CLOSE_MM / min(dy, dx)))))
    holes &= bd & (h >= AIR_HU)  # air (sinuses) splits components
    lab, n = ndimage.label(holes, structure=INPLANE_4)
    if n == 0:
        return out
    s = _component_stats(lab, n, h)
    area_cm2 = s["area"] * px_cm2
    zi = np.rint(s["z"]).astype(np.int64)
    brain_like = (s["soft"] >= CAVITY_SOFT_FRACTION) & (s["fat"] <= CAVITY_FAT_FRACTION) & \
        (area_cm2 >= CAVITY_MIN_CM2)
    slice_area = b_area[k0:k1][zi] * px_cm2
    seed = brain_like & (area_cm2 >= SEED_MIN_CM2) & (area_cm2 >= SEED_BODY_FRACTION * slice_area)
    brain_like[0] = seed[0] = False
    if not seed.any():
        return out
    cand = brain_like[lab]
    # 3-D connected to a seed, across open slices (up to the bridge distance) as well
    g = max(1, int(BRIDGE_MM / dz) // 2)
    # only holes of a good part of the largest seed (posterior fossa, temporal lobes) reach across
    big = (brain_like & (area_cm2 >= CAVITY_JUMP_FRACTION * area_cm2[seed].max()))[lab]
    reach = ndimage.binary_dilation(big, structure=np.ones((2 * g + 1, 1, 1), bool)) | cand
    cl, nc = ndimage.label(reach, structure=_Z6)
    seeded = np.zeros(nc + 1, bool)
    seeded[np.unique(cl[seed[lab]])] = True
    seeded[0] = False
    chain = cand & seeded[cl]
    # the cavity ends at the foramen magnum: below the lowest seed, the last slice (gaps of up to 2 g slices
    # allowed) whose cavity is larger than the spinal canal; below it the canal rule takes over
    big_slice = chain.sum(axis=(1, 2)) * px_cm2 >= CAVITY_FM_CM2
    k = k_fm = int(zi[seed].min())
    while k > 0 and k_fm - k <= 2 * g:
        k -= 1
        if big_slice[k]:
            k_fm = k
    chain[:k_fm] = False
    cavity = _bridge(chain, ~wall & bd & (h >= CNS_MIN_HU), dz, min(dy, dx), CAVITY_SHIFT_CM)
    cavity &= h >= CNS_MIN_HU
    # partial-volume rim of the cavity against the skull (up to CAVITY_RIM_HU)
    cavity |= ndimage.binary_dilation(cavity, structure=INPLANE_4) & bd & (h < CAVITY_RIM_HU) & (h >= CNS_MIN_HU)
    out[k0:k1, ys, xs] = cavity
    return out


def cns_mask(hu: np.ndarray, body: np.ndarray, spacing_zyx_mm) -> np.ndarray:
    """Bool (z, y, x) CNS of canonical HU and body mask: spinal canal | cranial cavity, HU >= ``CNS_MIN_HU``."""
    hu = np.asarray(hu, np.float32)
    body = np.asarray(body, bool)
    canal = fill_holes_per_slice(spinal_canal(hu, body, spacing_zyx_mm) & (hu >= CNS_MIN_HU))
    return canal | cranial_cavity(hu, body, spacing_zyx_mm)
