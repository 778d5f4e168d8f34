"""Preprocessing of the multi-organ 2D Res-UNet (papers/multi-organ-resunet.txt), pure numpy/scipy.

The same functions are used for training (models/organ_segmentation) and inference, so both see identical
network inputs. All arrays here are in the *canonical* axial layout (``canonical``): axis 0 slices
inferior->superior, axis 1 rows anterior->posterior, axis 2 columns patient right->left, i.e. an axial slice
as a radiologist views it (anterior up, patient right on the viewer's left).

    hu_c, affine_c = canonical(hu_zyx, affine_lps)          # reorient, no resampling
    box = body_box(hu_c, spacing_yx_mm)                      # Box(y0, y1, x0, x1) in hu_c's rows/columns
    lo, hi = window_for("liver")                             # (-70, 170) HU: organ-family window
    x = to_network(hu_c, box, (lo, hi))                      # float32 (z, 224, 304) in [0, 1]
    p = from_network(prob_z_224_304, box, hu_c.shape)        # float32 (z, y, x) on hu_c's grid
    mask_c = p >= 0.5
    mask = from_canonical(mask_c, affine_lps)                # back to the original (z, y, x) array order

Choices (paper where it says, ours where it does not):

* ``NET_SHAPE = (224, 304)``: rows anterior-posterior x columns left-right, as the paper.
* Windows per organ family, clip then scale to [0, 1] and discretise to 240 levels (paper):
  soft tissue -70..170 HU (paper); lungs -1000..200 HU (ours: separates aerated lung, -950..-500 HU,
  from outside air at -1000 only by shape, and from the soft-tissue chest wall and mediastinum); bones
  -200..1300 HU (ours: fat/soft tissue below, trabecular 150-400 and cortical 700-1300+ HU spread over
  the range). ``WINDOW_FAMILY`` maps each of the 23 organs to its family.
* Body-contour crop: one box per *volume* (the paper crops "to a bounding box including the body contour in
  the lateral and AP directions"; a per-volume box keeps the pixel scale constant from slice to slice,
  which a 2D network that sees slices of one patient at one scale needs). The body is the largest
  3D-connected component above -500 HU after a 2D opening of ~6 mm radius, which detaches the CT table
  (a thin plate) and blankets; the box is that component's row/column extent plus a 5 mm margin, then
  widened symmetrically to the network's aspect ratio 224:304 so that resizing is isotropic (no shape
  distortion between thin and broad patients). The box may extend beyond the image: outside samples read
  -1024 HU (air).
* Resizing: linear interpolation in-plane (order 1); slices are never resampled along z.
* Inverse: network probabilities are linearly interpolated back onto the canonical grid (zero outside the
  box), then thresholded by the caller (0.5).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

from operators.common.morphology import disk
from operators.common.render import canonical_axes, canonical_lps

NET_SHAPE: tuple[int, int] = (224, 304)  # (rows anterior->posterior, columns right->left)
N_LEVELS = 240  # intensity levels after normalisation (paper: "discretized to 240 intensity values")
AIR_HU = -1024.0
BODY_THRESHOLD_HU = -500.0

WINDOWS: dict[str, tuple[float, float]] = {
    "soft": (-70.0, 170.0),
    "lung": (-1000.0, 200.0),
    "bone": (-200.0, 1300.0),
}
WINDOW_FAMILY: dict[str, str] = {"lungs": "lung", "bones": "bone", "femoral_heads": "bone"}  # others: soft


class Box(NamedTuple):
    """Half-open in-plane crop box in canonical rows (y) and columns (x); may extend beyond the image."""

    y0: int
    y1: int
    x0: int
    x1: int


# --- orientation ------------------------------------------------------------------------------------------

def canonical(array_zyx: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(view of ``array_zyx`` in the canonical layout, its affine); no resampling (render.canonical_lps)."""
    return canonical_lps(array_zyx, affine_lps)


def from_canonical(array_c: np.ndarray, affine_lps: np.ndarray) -> np.ndarray:
    """Inverse of ``canonical``: an array in the canonical layout back to the original (z, y, x) order of the
    volume whose affine is ``affine_lps``."""
    src, flips = canonical_axes(affine_lps)
    out = array_c
    for target in range(3):
        if flips[target]:
            out = np.flip(out, axis=target)
    return np.transpose(out, np.argsort(src))


# --- windows ----------------------------------------------------------------------------------------------

def window_for(organ_name: str) -> tuple[float, float]:
    """(lo, hi) HU window of an organ's family (soft tissue unless listed in ``WINDOW_FAMILY``)."""
    return WINDOWS[WINDOW_FAMILY.get(organ_name, "soft")]


def normalise(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip to ``window``, scale to [0, 1] and discretise to ``N_LEVELS`` levels; float32."""
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise ValueError(f"window must have hi > lo, got {window}")
    x = np.clip(np.asarray(hu, np.float32), lo, hi)  # a new float32 array: the in-place steps below are safe
    x -= np.float32(lo)
    x *= np.float32((N_LEVELS - 1) / (hi - lo))
    np.rint(x, out=x)
    x /= np.float32(N_LEVELS - 1)
    return x


# --- body box ---------------------------------------------------------------------------------------------

def body_mask_sampled(hu_c: np.ndarray, spacing_yx_mm=(1.0, 1.0), max_slices: int = 48,
                      target_mm: float = 3.0) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Body mask on a subsampled grid: (mask (s, ys, xs), row step, column step, slice indices used)."""
    nz = hu_c.shape[0]
    ks = np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int))
    sy = max(int(round(target_mm / float(spacing_yx_mm[0]))), 1)
    sx = max(int(round(target_mm / float(spacing_yx_mm[1]))), 1)
    sub = hu_c[:, ::sy, ::sx][ks] > BODY_THRESHOLD_HU  # subsample before copying
    radius = int(round(6.0 / (target_mm if sy > 1 else float(spacing_yx_mm[0]))))
    st = disk(radius)[None]
    opened = ndimage.binary_opening(sub, structure=st)
    return opened, sy, sx, ks


def body_box(hu_c: np.ndarray, spacing_yx_mm=(1.0, 1.0), margin_mm: float = 5.0) -> Box:
    """Crop box of the body in canonical rows/columns (module docstring). ``spacing_yx_mm``: row and column
    spacing. Raises ValueError when nothing above -500 HU is found (no body in the image)."""
    mask, sy, sx, _ = body_mask_sampled(hu_c, spacing_yx_mm)
    lab, n = ndimage.label(mask)
    if n == 0:
        mask = hu_c[:, ::sy, ::sx] > BODY_THRESHOLD_HU  # tiny objects the opening removed entirely
        lab, n = ndimage.label(mask)
        if n == 0:
            raise ValueError("no body found in the volume (nothing above -500 HU)")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    _, yy, xx = np.nonzero(lab == int(np.argmax(sizes)))
    my = margin_mm / float(spacing_yx_mm[0])
    mx = margin_mm / float(spacing_yx_mm[1])
    y0, y1 = yy.min() * sy - my, (yy.max() + 1) * sy + my
    x0, x1 = xx.min() * sx - mx, (xx.max() + 1) * sx + mx
    y0, y1 = max(y0, 0.0), min(y1, float(hu_c.shape[1]))
    x0, x1 = max(x0, 0.0), min(x1, float(hu_c.shape[2]))
    # widen to the network aspect in mm (224 rows : 304 columns, isotropic pixels after resizing)
    h_mm, w_mm = (y1 - y0) * float(spacing_yx_mm[0]), (x1 - x0) * float(spacing_yx_mm[1])
    aspect = NET_SHAPE[0] / NET_SHAPE[1]
    if h_mm / w_mm < aspect:
        grow = (w_mm * aspect - h_mm) / float(spacing_yx_mm[0]) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = (h_mm / aspect - w_mm) / float(spacing_yx_mm[1]) / 2
        x0, x1 = x0 - grow, x1 + grow
    return Box(int(np.floor(y0)), int(np.ceil(y1)), int(np.floor(x0)), int(np.ceil(x1)))


def full_box(shape_zyx) -> Box:
    """Box of the whole image (no crop), widened to the network aspect is *not* applied."""
    return Box(0, int(shape_zyx[1]), 0, int(shape_zyx[2]))


# --- resampling -------------------------------------------------------------------------------------------

def _linear_taps(n_in: int, n_out: int, scale: float, offset: float):
    """Per output index r along one axis, source coordinate c = r * scale + offset: (lower index, upper index,
    fraction, inside) with inside = 0 <= c <= n_in - 1 (outside: the constant)."""
    c = np.arange(n_out, dtype=np.float64) * float(scale) + float(offset)
    inside = (c >= 0.0) & (c <= n_in - 1)
    lo = np.clip(np.floor(c), 0, n_in - 1).astype(np.int64)
    frac = np.where(inside, c - lo, 0.0).astype(np.float32)
    return (torch.from_numpy(lo), torch.from_numpy(np.minimum(lo + 1, n_in - 1)), torch.from_numpy(frac),
            torch.from_numpy(inside))


def _resample_slices(arr: np.ndarray, out_hw: tuple[int, int], scale_yx, offset_yx, cval: float,
                     chunk: int = 16, slices=None) -> np.ndarray:
    """Linear in-plane resampling of (z, h, w): out[k, r, c] = arr[k, r*sy + oy, c*sx + ox], ``cval`` where a
    coordinate falls outside the slice. The same values as ``scipy.ndimage.affine_transform`` (order 1, mode
    "constant", no prefilter) to float32 rounding (tested), computed separably (rows, then columns) with torch's
    multi-threaded gathers: 2-3x faster than scipy's one thread per slice at 512 x 512. ``slices``: only these
    slices of ``arr`` (output in that order), read ``chunk`` at a time so that no copy of the whole input is made
    (``arr`` may be any view, e.g. the flipped canonical HU)."""
    y_lo, y_hi, fy, in_y = _linear_taps(arr.shape[1], out_hw[0], scale_yx[0], offset_yx[0])
    x_lo, x_hi, fx, in_x = _linear_taps(arr.shape[2], out_hw[1], scale_yx[1], offset_yx[1])
    # read only the rows and columns the taps use (the body box of a 512 x 512 slice is often half of it)
    r0, r1, c0, c1 = int(y_lo.min()), int(y_hi.max()) + 1, int(x_lo.min()), int(x_hi.max()) + 1
    y_lo, y_hi, x_lo, x_hi = y_lo - r0, y_hi - r0, x_lo - c0, x_hi - c0
    slices = np.arange(arr.shape[0]) if slices is None else np.asarray(slices, int)
    out = np.empty((len(slices), *out_hw), np.float32)
    dst = torch.from_numpy(out)
    fy = fy[:, None]
    for k in range(0, len(slices), chunk):
        a = torch.from_numpy(np.ascontiguousarray(arr[slices[k:k + chunk], r0:r1, c0:c1], dtype=np.float32))
        rows = torch.lerp(a[:, y_lo], a[:, y_hi], fy)  # (n, out_h, w)
        o = torch.lerp(rows[:, :, x_lo], rows[:, :, x_hi], fx)  # (n, out_h, out_w)
        o[:, ~in_y] = cval
        o[:, :, ~in_x] = cval
        dst[k:k + chunk] = o
    return out


def to_network(hu_c: np.ndarray, box: Box, window: tuple[float, float], slices=None) -> np.ndarray:
    """Network input (z, 224, 304) float32 in [0, 1]: crop ``box`` of each canonical slice (of ``slices`` only,
    default all), resize linearly to ``NET_SHAPE`` (pixel centres aligned), window and normalise. Outside the
    image reads as air."""
    h, w = box.y1 - box.y0, box.x1 - box.x0
    sy, sx = h / NET_SHAPE[0], w / NET_SHAPE[1]
    # network pixel r centre <-> source row y0 + (r + 0.5) * sy - 0.5
    offset = (box.y0 + 0.5 * sy - 0.5, box.x0 + 0.5 * sx - 0.5)
    res = _resample_slices(hu_c, NET_SHAPE, (sy, sx), offset, AIR_HU, slices=slices)
    return normalise(res, window)


def from_network(prob: np.ndarray, box: Box, shape_zyx, region: tuple[slice, slice] | None = None) -> np.ndarray:
    """Network output (z, 224, 304) back onto the canonical grid ``shape_zyx`` (z, y, x): linear interpolation,
    zero outside the box; float32. Threshold (0.5) to get a mask. ``region`` (rows, columns) computes only that
    part of the grid (e.g. ``box_region``: everything outside the box is zero anyway)."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 3 or prob.shape[1:] != NET_SHAPE:
        raise ValueError(f"network output must be (z, {NET_SHAPE[0]}, {NET_SHAPE[1]}), got {prob.shape}")
    if prob.shape[0] != shape_zyx[0]:
        raise ValueError(f"network output has {prob.shape[0]} slices, target grid {shape_zyx[0]}")
    rows, cols = region or (slice(0, int(shape_zyx[1])), slice(0, int(shape_zyx[2])))
    h, w = box.y1 - box.y0, box.x1 - box.x0
    sy, sx = NET_SHAPE[0] / h, NET_SHAPE[1] / w
    # source row y <-> network coordinate (y - y0 + 0.5) * sy - 0.5; the output starts at row rows.start
    offset = ((rows.start - box.y0 + 0.5) * sy - 0.5, (cols.start - box.x0 + 0.5) * sx - 0.5)
    # nearest edge values inside the box, zero outside: pad by one zero pixel around the network grid
    padded = np.pad(prob, ((0, 0), (1, 1), (1, 1)))
    return _resample_slices(padded, (rows.stop - rows.start, cols.stop - cols.start), (sy, sx),
                            (offset[0] + 1.0, offset[1] + 1.0), 0.0)


def above_threshold_region(prob: np.ndarray, threshold: float, box: Box,
                           region: tuple[slice, slice]) -> tuple[slice, slice] | None:
    """The part of ``region`` (rows, columns of the canonical grid) where ``from_network(prob, box, ...)`` can reach
    ``threshold``, or None where it cannot anywhere. Linear interpolation never exceeds the two network pixels it
    reads, so a grid row can reach the threshold only if its network coordinate u lies within one pixel of a
    network row that does: u in (r_lo - 1, r_hi + 1); the same for columns. Computing only that part gives the
    same mask as the whole region (tested) and skips the slices and margins an organ does not reach."""
    hit = np.asarray(prob) >= threshold
    if not hit.any():
        return None
    ys = np.nonzero(hit.any(axis=(0, 2)))[0]
    xs = np.nonzero(hit.any(axis=(0, 1)))[0]
    h, w = box.y1 - box.y0, box.x1 - box.x0
    out = []
    for lo, hi, size, start, sl in ((ys[0], ys[-1], h / NET_SHAPE[0], box.y0, region[0]),
                                    (xs[0], xs[-1], w / NET_SHAPE[1], box.x0, region[1])):
        # grid y <-> network u = (y - start + 0.5) / size - 0.5, i.e. y = (u + 0.5) * size + start - 0.5
        a = int(np.floor((lo - 1 + 0.5) * size + start - 0.5))
        b = int(np.ceil((hi + 1 + 0.5) * size + start - 0.5)) + 1
        a, b = max(a, sl.start), min(b, sl.stop)
        if a >= b:
            return None
        out.append(slice(a, b))
    return out[0], out[1]


def box_region(box: Box, shape_zyx) -> tuple[slice, slice]:
    """(rows, columns) of the canonical grid inside ``box`` (outside it ``from_network`` gives zero)."""
    return (slice(max(box.y0, 0), min(box.y1, int(shape_zyx[1]))),
            slice(max(box.x0, 0), min(box.x1, int(shape_zyx[2]))))
