"""Piecewise-linear mapping of z positions between two bodies through shared landmarks (pure numpy)."""

from __future__ import annotations

import numpy as np


def matched_pairs(src: dict[str, float], dst: dict[str, float], min_gap_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(src z, dst z) of the landmarks both bodies know, ascending in src, strictly increasing in both:
    landmarks that would make the map fold (or closer than ``min_gap_mm``) are dropped, the least
    consistent first (longest increasing run kept)."""
    names = [n for n in src if n in dst and np.isfinite(src[n]) and np.isfinite(dst[n])]
    if not names:
        return np.zeros(0), np.zeros(0)
    s = np.array([src[n] for n in names], float)
    d = np.array([dst[n] for n in names], float)
    o = np.argsort(s, kind="stable")
    s, d = s[o], d[o]
    # longest chain strictly increasing in both (O(n^2), n <= ~31)
    n = len(s)
    best, prev = np.ones(n, int), np.full(n, -1)
    for i in range(n):
        for j in range(i):
            if s[i] - s[j] >= min_gap_mm and d[i] - d[j] >= min_gap_mm and best[j] + 1 > best[i]:
                best[i], prev[i] = best[j] + 1, j
    i = int(np.argmax(best))
    keep = []
    while i >= 0:
        keep.append(i)
        i = int(prev[i])
    keep = keep[::-1]
    return s[keep], d[keep]


def map_z(z, src: dict[str, float], dst: dict[str, float], default_scale: float = 1.0) -> np.ndarray:
    """Map z (mm) from the ``src`` body to the ``dst`` body: piecewise linear between matched landmarks,
    linear beyond the outermost ones with the mean slope of the matched span (``default_scale`` with one
    landmark; identity shift-free scale with none is not possible, so z is returned scaled)."""
    z = np.asarray(z, float)
    s, d = matched_pairs(src, dst)
    if len(s) == 0:
        return z * default_scale
    if len(s) == 1:
        return d[0] + (z - s[0]) * default_scale
    slope = (d[-1] - d[0]) / (s[-1] - s[0])
    out = np.interp(z, s, d)
    lo, hi = z < s[0], z > s[-1]
    out[lo] = d[0] + (z[lo] - s[0]) * slope
    out[hi] = d[-1] + (z[hi] - s[-1]) * slope
    return out
