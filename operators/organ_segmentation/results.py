"""Per-organ results of an organ label map (volume, mean HU, status), Dice / Jaccard, and STL meshes.

    organ_results(ct_volume, labels, status)   # {"liver": {"volume_ml", "mean_hu", "status", "n_voxels",
                                                #            "volume_check"}, ...}
    dice(a, b), jaccard(a, b)                   # boolean masks; 1.0 when both are empty
    write_stl(mask, affine_lps, path)           # binary STL, vertices in patient LPS mm (marching cubes)

Organ masks are read with ``labels.organ_mask`` (container organs include the organs inside them).
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
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


# --- volume plausibility ------------------------------------------------------------------------------------

REFERENCE_VOLUMES = Path(__file__).resolve().parent / "data" / "reference_volumes_icrp110.json"
# solid organs whose volume varies little between adults; hollow or distensible organs (stomach, bowel,
# bladder, gallbladder), organs that involute (thymus) and the partly modelled ones are not checked
VOLUME_CHECKED = ("liver", "spleen", "kidneys", "pancreas", "heart", "lungs", "brain", "eyes")
VOLUME_RANGE = (1.0 / 3.0, 3.0)  # x the reference adult volume of the patient's sex (both sexes when unknown)


@lru_cache(maxsize=1)
def reference_volumes() -> dict[str, dict[str, float]]:
    """{organ: {"M": mL, "F": mL}} (models/organ_segmentation/reference_volumes.py wrote the table)."""
    return json.loads(REFERENCE_VOLUMES.read_text())["volumes_ml"]


def volume_check(organ: str, volume_ml: float, sex: str | None, truncated: bool) -> dict | None:
    """Plausibility of a segmented organ's volume against the ICRP-110 reference adult: ``result`` is "within",
    "above" or "below" the range ``VOLUME_RANGE`` x reference, or "partial" for an organ the scan cuts
    (``truncated``) with less than the whole-organ range: a partly scanned organ may be that small, so it is
    neither flagged nor called within. A flag asks for review (organ enlargement, pathology or a segmentation
    error); it does not change the segmentation. None for organs that are not checked."""
    ref = reference_volumes().get(organ)
    if organ not in VOLUME_CHECKED or ref is None:
        return None
    refs = [ref[sex]] if sex in ("M", "F") else [ref["M"], ref["F"]]
    lo, hi = VOLUME_RANGE[0] * min(refs), VOLUME_RANGE[1] * max(refs)
    if volume_ml > hi:
        result = "above"
    elif volume_ml < lo:
        result = "partial" if truncated else "below"
    else:
        result = "within"
    out = {"result": result, "range_ml": [round(lo, 1), round(hi, 1)],
           "reference": f"ICRP-110 reference adult ({'/'.join(sorted(ref)) if len(refs) == 2 else sex}), "
                        f"{VOLUME_RANGE[0]:.2g}-{VOLUME_RANGE[1]:.2g} x its volume"}
    if truncated:
        out["truncated_by_scan"] = True
    if result == "partial":
        out["note"] = (f"{organ} volume {volume_ml:.0f} mL is below the whole-organ range and the scan cuts the "
                       "organ: not judged")
    elif result != "within":
        out["note"] = (f"{organ} volume {volume_ml:.0f} mL is {result} the plausible range; review the segmentation "
                       "(organ enlargement or atrophy, pathology, or a segmentation error)")
    return out


def _cut_by_scan(mask: np.ndarray, searched_span: list[int] | None) -> bool:
    """Whether the scan may cut the organ: its mask touches the first or last slice, or the slices searched for
    it ([first, last] volume slice; None: not known) reach either end of the scan."""
    if mask[0].any() or mask[-1].any():
        return True
    return searched_span is not None and (searched_span[0] <= 0 or searched_span[1] >= mask.shape[0] - 1)


def organ_results(vol: CTVolume, labels: np.ndarray, status: dict[str, str],
                  searched: dict[str, list[int]] | None = None) -> dict[str, dict]:
    """{organ: {"volume_ml", "mean_hu", "status", "n_voxels"[, "volume_check"]}} for every organ in ``status``
    (ALL_ORGANS order of the label table as given). Organs not in the field of view get null volume and HU.
    ``volume_check`` (``volume_check``): for the solid organs ``VOLUME_CHECKED`` that were segmented. An organ
    counts as cut by the scan when its mask touches the first or last slice, or when the slices searched for it
    (``searched``: [first, last] volume slice per organ, the segmentation's GrayNet-derived range) reach either
    end of the scan: a partly scanned organ may be predicted without reaching the edge slice."""
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
        if n:
            truncated = _cut_by_scan(m, None if searched is None else searched.get(organ, [0, m.shape[0] - 1]))
            check = volume_check(organ, n * vml, vol.meta.patient_sex, truncated)
            if check is not None:
                out[organ]["volume_check"] = check
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
