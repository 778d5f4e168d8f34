"""Slice-wise morphology on (z, y, x) CT masks shared by the operators (scipy.ndimage underneath)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BODY_HU = -500.0  # half way between air and soft tissue: the patient's surface

INPLANE_4 = np.zeros((3, 3, 3), bool)
INPLANE_4[1, 1, :] = INPLANE_4[1, :, 1] = True  # 4-connected in plane, no connection across slices


def disk(radius_px: int) -> np.ndarray:
    """2-D bool disk of ``radius_px`` pixels (at least 1); ``disk(r)[None]`` is an in-plane structure for
    (z, y, x) masks."""
    r = max(int(radius_px), 1)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= r * r


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` of every axial slice of a (z, y, x) mask, in one labelling pass: the
    background components (4-connected in plane) that do not touch the slice border are holes."""
    mask = np.asarray(mask, bool)
    lab, n = ndimage.label(~mask, structure=INPLANE_4)
    if n == 0:
        return mask.copy()
    outer = np.zeros(n + 1, bool)
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        outer[np.unique(edge)] = True
    outer[0] = True  # label 0 = the mask itself
    return mask | ~outer[lab]


def patient_outline(hu: np.ndarray, threshold_hu: float = BODY_HU) -> np.ndarray:
    """The patient: the largest 3-D connected component above ``threshold_hu``, holes filled per slice (so that
    lungs and bowel gas are inside); the couch, a separate component, is left out."""
    fg = np.asarray(hu) > threshold_hu
    lab, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(fg.shape, bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return fill_holes_per_slice(lab == int(np.argmax(sizes)))
