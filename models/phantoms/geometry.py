"""Vectorised solid-geometry painting on a voxel grid (the phantom's drawing primitives).

A ``Canvas`` holds a tissue label volume (z, y, x) on a regular grid given by 1-D coordinate vectors in
patient LPS mm (x towards patient left, y towards posterior, z towards the head, all ascending). Each
primitive evaluates its inside test only within its bounding box, with numpy broadcasting, and paints a
tissue id there. ``allowed`` restricts painting to voxels currently holding one of a set of tissues:
that is how precedence is expressed (an organ painted "only into visceral fat" never overwrites an organ
painted before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def rotation(axis_from: Sequence[float], axis_to: Sequence[float] | None = None) -> np.ndarray:
    """Rotation matrix whose first column is the unit vector ``axis_from`` (the local u axis); the second
    column is the component of ``axis_to`` (default: patient x or z) orthogonal to it."""
    u = np.asarray(axis_from, float)
    u = u / np.linalg.norm(u)
    ref = np.asarray(axis_to if axis_to is not None else ([0, 0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0, 0]), float)
    v = ref - np.dot(ref, u) * u
    v /= np.linalg.norm(v)
    w = np.cross(u, v)
    return np.stack([u, v, w], axis=1)


def rot_xyz(ax_deg: float = 0.0, ay_deg: float = 0.0, az_deg: float = 0.0) -> np.ndarray:
    """Rotation R = Rz @ Ry @ Rx (degrees) mapping local to patient axes."""
    ax, ay, az = np.deg2rad([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def catmull_rom(points: Sequence[Sequence[float]], samples_per_segment: int = 8) -> np.ndarray:
    """Smooth curve through ``points`` (N, D) (centripetal-free uniform Catmull-Rom), endpoints kept."""
    p = np.asarray(points, float)
    if len(p) < 3:
        t = np.linspace(0, 1, samples_per_segment + 1)[:, None]
        return p[0] + t * (p[-1] - p[0])
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    t = np.linspace(0, 1, samples_per_segment, endpoint=False)[:, None]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(p[-1][None])
    return np.vstack(out)


class Canvas:
    """Tissue label volume on a regular LPS grid (ascending coordinate vectors)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray):
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y, np.float32)
        self.z = np.asarray(z, np.float32)
        for c in (self.x, self.y, self.z):
            if len(c) > 1 and not np.all(np.diff(c) > 0):
                raise ValueError("canvas coordinates must be strictly ascending")
        self.lab = np.zeros((len(self.z), len(self.y), len(self.x)), np.uint8)
        self.tags: dict[str, np.ndarray] = {}  # per-slice presence of tagged parts (e.g. "arm")

    @property
    def spacing(self) -> tuple[float, float, float]:
        d = [float(c[1] - c[0]) if len(c) > 1 else 1.0 for c in (self.z, self.y, self.x)]
        return d[0], d[1], d[2]

    @staticmethod
    def _rng(c: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
        if len(c) == 1:
            return (0, 1) if lo <= c[0] <= hi else (0, 0)
        d = float(c[1] - c[0])
        i0 = max(int(np.ceil((lo - c[0]) / d - 1e-6)), 0)
        i1 = min(int(np.floor((hi - c[0]) / d + 1e-6)) + 1, len(c))
        return i0, i1

    def box(self, lo: Sequence[float], hi: Sequence[float]):
        """(slices, X, Y, Z) for the grid part inside [lo, hi] (x, y, z mm), with X (1,1,nx), Y (1,ny,1),
        Z (nz,1,1) broadcastable coordinate arrays; None when empty."""
        i0, i1 = self._rng(self.x, lo[0], hi[0])
        j0, j1 = self._rng(self.y, lo[1], hi[1])
        k0, k1 = self._rng(self.z, lo[2], hi[2])
        if i1 <= i0 or j1 <= j0 or k1 <= k0:
            return None
        sl = (slice(k0, k1), slice(j0, j1), slice(i0, i1))
        return sl, self.x[None, None, i0:i1], self.y[None, j0:j1, None], self.z[k0:k1, None, None]

    @staticmethod
    def allow(tissues: Iterable[int] | None) -> np.ndarray | None:
        if tissues is None:
            return None
        lut = np.zeros(256, bool)
        lut[list(tissues)] = True
        return lut

    def paint(self, sl, mask: np.ndarray, tissue: int, allowed: np.ndarray | None = None,
              tag: str | None = None) -> np.ndarray:
        sub = self.lab[sl]
        mask = np.broadcast_to(mask, sub.shape)
        if allowed is not None:
            mask = mask & allowed[sub]
        sub[mask] = tissue
        if tag is not None and mask.any():
            t = self.tags.setdefault(tag, np.zeros(len(self.z), bool))
            t[sl[0]] |= mask.any(axis=(1, 2))
        return mask

    # --- primitives --------------------------------------------------------------------------------

    def ellipsoid(self, center, radii, tissue: int, rot: np.ndarray | None = None, allowed=None,
                  tag: str | None = None, where=None, exponent: float = 2.0):
        """Ellipsoid (or superellipsoid with ``exponent``), local axes = columns of ``rot``.
        ``where(X, Y, Z) -> bool array`` further restricts the painted region."""
        c = np.asarray(center, float)
        r = np.asarray(radii, float)
        R = np.eye(3) if rot is None else np.asarray(rot, float)
        half = np.sqrt(((R * r[None, :]) ** 2).sum(axis=1))
        b = self.box(c - half, c + half)
        if b is None:
            return None
        sl, X, Y, Z = b
        dx, dy, dz = X - c[0], Y - c[1], Z - c[2]
        if rot is None:
            u, v, w = dx / r[0], dy / r[1], dz / r[2]
        else:
            u = (R[0, 0] * dx + R[1, 0] * dy + R[2, 0] * dz) / r[0]
            v = (R[0, 1] * dx + R[1, 1] * dy + R[2, 1] * dz) / r[1]
            w = (R[0, 2] * dx + R[1, 2] * dy + R[2, 2] * dz) / r[2]
        if exponent == 2.0:
            m = u * u + v * v + w * w <= 1.0
        else:
            m = np.abs(u) ** exponent + np.abs(v) ** exponent + np.abs(w) ** exponent <= 1.0
        if where is not None:
            m = m & where(X, Y, Z)
        return self.paint(sl, m, tissue, allowed, tag)

    def capsule(self, p0, p1, r0: float, r1: float, tissue: int, allowed=None, tag: str | None = None,
                where=None, scale_xyz=None):
        """Tapered capsule: points within r(t) of the segment p0-p1 (r linear in t, spheres at the ends).
        ``scale_xyz`` squashes the cross-section (e.g. (1, 0.6, 1) for a flat rib)."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        rm = max(r0, r1)
        b = self.box(np.minimum(p0, p1) - rm, np.maximum(p0, p1) + rm)
        if b is None:
            return None
        sl, X, Y, Z = b
        d = p1 - p0
        dd = float(np.dot(d, d)) or 1e-9
        t = np.clip(((X - p0[0]) * d[0] + (Y - p0[1]) * d[1] + (Z - p0[2]) * d[2]) / dd, 0.0, 1.0)
        qx, qy, qz = X - (p0[0] + t * d[0]), Y - (p0[1] + t * d[1]), Z - (p0[2] + t * d[2])
        if scale_xyz is not None:
            qx, qy, qz = qx / scale_xyz[0], qy / scale_xyz[1], qz / scale_xyz[2]
        r = r0 + t * (r1 - r0)
        m = qx * qx + qy * qy + qz * qz <= r * r
        if where is not None:
            m = m & where(X, Y, Z)
        return self.paint(sl, m, tissue, allowed, tag)

    def tube(self, points, radii, tissue: int, allowed=None, tag: str | None = None, where=None,
             scale_xyz=None):
        """Chain of tapered capsules through ``points`` (N, 3) with per-point ``radii`` (N,) or a scalar."""
        pts = np.asarray(points, float)
        rr = np.broadcast_to(np.asarray(radii, float), (len(pts),))
        for i in range(len(pts) - 1):
            if rr[i] > 0 or rr[i + 1] > 0:
                self.capsule(pts[i], pts[i + 1], float(rr[i]), float(rr[i + 1]), tissue, allowed, tag, where,
                             scale_xyz)

    def cylinder_z(self, center_xy, radii_xy, z0: float, z1: float, tissue: int, allowed=None,
                   tag: str | None = None, exponent: float = 2.0):
        """Elliptic (super-elliptic) cylinder along z."""
        cx, cy = center_xy
        ax, ay = radii_xy
        b = self.box((cx - ax, cy - ay, z0), (cx + ax, cy + ay, z1))
        if b is None:
            return None
        sl, X, Y, Z = b
        m = np.abs((X - cx) / ax) ** exponent + np.abs((Y - cy) / ay) ** exponent <= 1.0
        return self.paint(sl, m, tissue, allowed, tag)


def ellipsoid_points(center, radii, rot=None, n: int = 4000, seed: int = 0) -> np.ndarray:
    """Uniform random points inside an ellipsoid (for analytic landmark extents)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p *= rng.uniform(0, 1, size=(n, 1)) ** (1 / 3)
    p *= np.asarray(radii, float)
    if rot is not None:
        p = p @ np.asarray(rot, float).T
    return p + np.asarray(center, float)
