"""Per-organ results of an organ label map (volume, mean HU, status), Dice / Jaccard, and STL meshes.

    organ_results(ct_volume, labels, status)   # {"liver": {"volume_ml", "mean_hu", "status", "n_voxels"}, ...}
    dice(a, b), jaccard(a, b)                   # boolean masks; 1.0 when both are empty
    write_stl(mask, affine_lps, path)           # binary STL, vertices in patient LPS mm (marching cubes)

Organ masks are read with ``labels.organ_mask`` (container organs include the organs inside them).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from operators.common.labels import ORGAN_BY_NAME, organ_mask
from operators.common.volume import CTVolume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    u = int(np.logical_or(a, b).sum())
    return 1.0 if u == 0 else int(np.logical_and(a, b).sum()) / u


def voxel_volume_ml(vol: CTVolume) -> float:
    return float(abs(np.linalg.det(vol.affine_lps[:3, :3]))) / 1000.0


def organ_results(vol: CTVolume, labels: np.ndarray, status: dict[str, str]) -> dict[str, dict]:
    """{organ: {"volume_ml", "mean_hu", "status", "n_voxels"}} for every organ in ``status`` (ALL_ORGANS order
    of the label table as given). Organs not in the field of view get null volume and HU."""
    vml = voxel_volume_ml(vol)
    out = {}
    for organ in [n for n in ORGAN_BY_NAME if n in status]:
        st = status[organ]
        if st == "not in field of view":
            out[organ] = {"volume_ml": None, "mean_hu": None, "status": st, "n_voxels": 0}
            continue
        m = organ_mask(labels, organ)
        n = int(m.sum())
        out[organ] = {"volume_ml": round(n * vml, 2), "mean_hu": round(float(vol.hu[m].mean()), 1) if n else None,
                      "status": st if n or st != "segmented" else "not found", "n_voxels": n}
    return out


def write_stl(mask: np.ndarray, affine_lps: np.ndarray, path: str | Path, name: str = "organ",
              step: int = 1) -> Path:
    """Binary STL of the mask surface (marching cubes at 0.5 on the padded mask, ``step`` voxels per cube), with
    vertices in patient LPS mm and outward normals."""
    from skimage.measure import marching_cubes

    m = np.pad(np.asarray(mask, np.float32), 1)
    if m.max() <= 0:
        raise ValueError(f"{name}: empty mask, no surface to write")
    verts, faces, _, _ = marching_cubes(m, 0.5, step_size=int(step), allow_degenerate=False)
    kji = verts - 1.0  # undo the padding: (k, j, i) voxel indices
    ijk = kji[:, ::-1]
    a = np.asarray(affine_lps, float)
    xyz = ijk @ a[:3, :3].T + a[:3, 3]
    tri = xyz[faces]  # (n, 3, 3)
    if _signed_volume(tri) < 0:  # orient the winding so that normals point outwards (positive enclosed volume)
        tri = tri[:, ::-1]
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    rec = np.zeros(len(tri), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec["n"], rec["v"] = nrm, tri
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"CorpusCT {name} LPS mm".encode()[:80].ljust(80, b" ")
    with open(path, "wb") as f:
        f.write(header)
        f.write(struct.pack("<I", len(tri)))
        f.write(rec.tobytes())
    return path


def read_stl(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(normals (n, 3), triangles (n, 3, 3)) of a binary STL (for checks)."""
    data = Path(path).read_bytes()
    n = struct.unpack("<I", data[80:84])[0]
    rec = np.frombuffer(data[84:84 + 50 * n], dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    return rec["n"].astype(float), rec["v"].astype(float)


def _signed_volume(t: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)


def mesh_volume_ml(triangles: np.ndarray) -> float:
    """Signed volume enclosed by a closed triangle mesh (divergence theorem), ml; positive for outward normals."""
    return _signed_volume(np.asarray(triangles, float)) / 1000.0
