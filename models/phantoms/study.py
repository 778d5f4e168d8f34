"""The demo study: one DICOM study of a procedural phantom plus its ground truth beside it.

Layout written by ``write_demo_study(phantom, out_dir)``::

    out_dir/
      dicom/                         the DICOM study (only DICOM files; give this folder to the apps)
        S001_0001.dcm                series 1: localizer (scout), ORIGINAL\\PRIMARY\\LOCALIZER, AP projection
        S002_0001.dcm ...            series 2: axial CT, ORIGINAL\\PRIMARY\\AXIAL, one file per slice
        S003_0001.dcm ...            series 3: coronal reformat, DERIVED\\SECONDARY\\REFORMATTED
      labels/                        ground truth on the axial series' grid (NOT inside dicom/)
        organs.nii.gz                ALL_ORGANS ids (uint8)
        body_composition.nii.gz      BODY_COMPOSITION ids (uint8)
        phantom.json                 parameters, landmarks (mm), body parts per slice, UIDs, label tables,
                                     per-slice tube current and water-equivalent diameter

All series share the StudyInstanceUID and FrameOfReferenceUID; every UID derives from the seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from operators.common.labels import ALL_ORGANS, BODY_COMPOSITION
from operators.common.volume import CTMetadata, CTVolume, save_nifti

from .dicom_export import (
    IMAGE_TYPE_AXIAL,
    IMAGE_TYPE_LOCALIZER,
    IMAGE_TYPE_REFORMAT,
    StudyInfo,
    uid_from,
    write_ct_series,
)
from .params import PhantomParams
from .phantom import Phantom, generate_phantom

MU_WATER_PER_MM = 0.0195  # ~ 70 keV effective energy


@dataclass
class SeriesRecord:
    """One written series. Attribute or item access: ``rec.series_instance_uid`` == ``rec["series_instance_uid"]``."""

    role: str  # "localizer" | "axial" | "coronal"
    series_number: int
    series_instance_uid: str
    description: str
    image_type: tuple[str, ...]
    n_images: int
    paths: list[Path]

    def __getitem__(self, key: str):
        return getattr(self, key)

    def to_json(self) -> dict:
        return {"role": self.role, "series_number": self.series_number,
                "series_instance_uid": self.series_instance_uid, "description": self.description,
                "image_type": list(self.image_type), "n_images": self.n_images,
                "files": [p.name for p in self.paths]}


class SeriesSet:
    """The study's series: iterating yields ``SeriesRecord`` objects (series number order); indexing by role
    (``study.series["axial"]``) returns one."""

    def __init__(self, records: list[SeriesRecord]):
        self._recs = sorted(records, key=lambda r: r.series_number)

    def __iter__(self):
        return iter(self._recs)

    def __len__(self) -> int:
        return len(self._recs)

    def __getitem__(self, role: str) -> SeriesRecord:
        for r in self._recs:
            if r.role == role:
                return r
        raise KeyError(role)

    def __contains__(self, role) -> bool:
        return any(r.role == role for r in self._recs)

    def keys(self) -> list[str]:
        return [r.role for r in self._recs]

    def to_json(self) -> dict:
        return {r.role: r.to_json() for r in self._recs}


@dataclass
class DemoStudy:
    root: Path
    dicom_dir: Path
    labels_dir: Path
    json_path: Path
    series: SeriesSet
    phantom: Phantom | None = None


def localizer_volume(ph: Phantom, pixel_mm: float | None = None) -> CTVolume:
    """AP scout: attenuation line integrals along y (posterior-anterior), a coronal 2-D image.

    Pixel values are 12-bit display values (bone bright), not HU. Geometry: a coronal plane through the
    isocentre (y = 0), rows from head to feet, columns from patient right to left."""
    from scipy import ndimage

    hu = ph.ct.hu
    dz, dy, dx = ph.ct.spacing_mm
    mu = np.clip(hu / 1000.0 + 1.0, 0.0, None) * MU_WATER_PER_MM
    proj = mu.sum(axis=1) * dy  # (z, x), head first
    px = pixel_mm or dx
    zoom = (dz / px, dx / px)
    img = ndimage.zoom(proj, zoom, order=1)
    val = np.clip(img * 450.0, 0, 4095).astype(np.float32)
    a = ph.ct.affine_lps
    z_top = float(a[2, 3])
    aff = np.eye(4)
    aff[:3, 0] = [px * np.sign(a[0, 0]), 0, 0]
    aff[:3, 1] = [0, 0, -px]
    aff[:3, 2] = [0, 1.0, 0]
    aff[:3, 3] = [a[0, 3], 0.0, z_top]
    meta = CTMetadata(kvp=120.0, convolution_kernel="SCOUT", body_part_examined=ph.ct.meta.body_part_examined)
    return CTVolume(val[None].astype(np.float32), aff, meta)


def coronal_reformat(ph: Phantom, slab_mm: float = 10.0, pixel_mm: float | None = None,
                     max_images: int = 40) -> CTVolume:
    """Coronal MPR slabs (mean over ``slab_mm`` in y) from the axial volume; orientation
    [1,0,0, 0,0,-1] (rows towards patient left, columns towards the feet), slices anterior -> posterior."""
    from scipy import ndimage

    hu = ph.ct.hu
    dz, dy, dx = ph.ct.spacing_mm
    a = ph.ct.affine_lps
    body = (hu > -500).any(axis=(0, 2))
    j = np.nonzero(body)[0]
    j0, j1 = (int(j.min()), int(j.max()) + 1) if len(j) else (0, hu.shape[1])
    n_slab = max(int(round(slab_mm / dy)), 1)
    n_img = max(min((j1 - j0) // n_slab, max_images), 1)
    step = max((j1 - j0) // n_img, 1)
    px = pixel_mm or dx
    imgs, ys = [], []
    for k in range(n_img):
        a0 = j0 + k * step
        slab = hu[:, a0:a0 + n_slab, :].mean(axis=1)  # (z, x), head first
        imgs.append(ndimage.zoom(slab, (dz / px, dx / px), order=1))
        ys.append(float(a[1, 3] + a[1, 1] * (a0 + 0.5 * (n_slab - 1))))
    vol = np.stack(imgs).astype(np.float32)
    aff = np.eye(4)
    aff[:3, 0] = [px * np.sign(a[0, 0]), 0, 0]
    aff[:3, 1] = [0, 0, -px]
    aff[:3, 2] = [0, ys[1] - ys[0] if len(ys) > 1 else slab_mm, 0]
    aff[:3, 3] = [a[0, 3], ys[0], float(a[2, 3])]
    m = ph.ct.meta
    meta = CTMetadata(kvp=m.kvp, ctdivol_mgy=m.ctdivol_mgy, convolution_kernel=m.convolution_kernel,
                      slice_thickness_mm=float(n_slab * dy), body_part_examined=m.body_part_examined)
    return CTVolume(vol, aff, meta)


def study_info(ph: Phantom) -> StudyInfo:
    p = ph.params
    desc = {"whole": "CT WHOLE BODY", "head": "CT HEAD", "chest": "CT CHEST", "abdomen": "CT ABDOMEN",
            "pelvis": "CT PELVIS"}[p.region]
    return StudyInfo.from_seed(p.seed, patient_sex=p.sex, patient_age_years=p.age_years,
                               patient_weight_kg=p.weight_kg, patient_size_m=p.height_cm / 100.0,
                               study_description=f"{desc} (SYNTHETIC PHANTOM)")


def write_demo_study(ph: Phantom, out_dir: str | Path, *, localizer: bool = True, coronal: bool = True) -> DemoStudy:
    """Write the phantom as a DICOM study (``out_dir/dicom``) with labels beside it (``out_dir/labels``)."""
    out_dir = Path(out_dir)
    dicom_dir = out_dir / "dicom"
    labels_dir = out_dir / "labels"
    dicom_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    study = study_info(ph)
    m = ph.ct.meta
    ctdi_phantom = "head" if ph.params.region == "head" else "body"
    recs: list[SeriesRecord] = []
    if localizer:
        loc = localizer_volume(ph)
        uid = uid_from(study.study_instance_uid, "series", 1)
        desc = "Topogram 0.6 AP"
        paths = write_ct_series(loc, dicom_dir, 1, desc, study=study, image_type=IMAGE_TYPE_LOCALIZER,
                                series_instance_uid=uid, tube_current_ma=[35.0], exposure_time_ms=2000.0,
                                ctdivol_mgy=0.1, ctdi_phantom=ctdi_phantom, slice_thickness_mm=0.6,
                                window=(1800.0, 3000.0), convolution_kernel="SCOUT")
        recs.append(SeriesRecord("localizer", 1, uid, desc, IMAGE_TYPE_LOCALIZER, len(paths), paths))
    uid_ax = uid_from(study.study_instance_uid, "series", 2)
    sop_ax = [uid_from(uid_ax, "instance", k) for k in range(ph.ct.shape[0])]
    desc = f"{m.body_part_examined.title()} {ph.params.slice_thickness_mm:g}mm {ph.params.kernel}"
    paths = write_ct_series(ph.ct, dicom_dir, 2, desc, study=study, image_type=IMAGE_TYPE_AXIAL,
                            series_instance_uid=uid_ax, sop_instance_uids=sop_ax, ctdi_phantom=ctdi_phantom,
                            window=(40.0, 400.0) if ctdi_phantom == "body" else (40.0, 80.0))
    recs.append(SeriesRecord("axial", 2, uid_ax, desc, IMAGE_TYPE_AXIAL, len(paths), paths))
    if coronal:
        cor = coronal_reformat(ph)
        uid_c = uid_from(study.study_instance_uid, "series", 3)
        desc = "Coronal MPR 10mm"
        paths = write_ct_series(cor, dicom_dir, 3, desc, study=study, image_type=IMAGE_TYPE_REFORMAT,
                                series_instance_uid=uid_c, tube_current_ma=None, ctdi_phantom=ctdi_phantom,
                                source_sop_instance_uids=sop_ax[:: max(len(sop_ax) // 16, 1)],
                                derivation_description="Coronal multiplanar reformat, 10 mm average slabs")
        recs.append(SeriesRecord("coronal", 3, uid_c, desc, IMAGE_TYPE_REFORMAT, len(paths), paths))
    series = SeriesSet(recs)
    save_nifti(ph.organs, ph.ct.affine_lps, labels_dir / "organs.nii.gz")
    save_nifti(ph.body_composition, ph.ct.affine_lps, labels_dir / "body_composition.nii.gz")
    info = {
        "description": "CorpusCT procedural phantom ground truth (synthetic, not patient data). Label maps are on "
                       "the grid of the axial series (series 2); NIfTI stores RAS, see operators/common/volume.py.",
        "study_instance_uid": study.study_instance_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "series": series.to_json(),
        "params": ph.params.to_json(),
        "landmarks_mm": {k: round(v, 2) for k, v in ph.landmarks_mm.items()},
        "slice_z_mm": [round(float(z), 3) for z in ph.ct.slice_z_mm],
        "body_parts_per_slice": ph.body_parts,
        "tube_current_ma": [round(float(v), 1) for v in m.tube_current_ma],
        "water_equivalent_diameter_mm": [round(float(v), 1) for v in ph.dw_mm],
        "ctdivol_mgy": m.ctdivol_mgy,
        "organs": {lab.id: lab.name for lab in ALL_ORGANS},
        "body_composition": {lab.id: lab.name for lab in BODY_COMPOSITION},
        "gi_tract_definition": "gi_tract = duodenum; the paper's summed GI segment = gi_tract + small_intestine + colon",
        "organ_volumes_ml": ph.summary()["organ_volumes_ml"],
    }
    json_path = labels_dir / "phantom.json"
    json_path.write_text(json.dumps(info, indent=1))
    return DemoStudy(out_dir, dicom_dir, labels_dir, json_path, series, ph)


# Parameters of the built-in demo study (apps run on it when given no input).
DEMO_PARAMS = PhantomParams(seed=0, sex="M", age_years=45.0, bmi=25.0, region="whole", slice_thickness_mm=5.0,
                            matrix=256)


def demo_study(workdir: str | Path, params: PhantomParams | None = None) -> Path:
    """Generate and write the demo study into ``workdir``; returns its DICOM folder (for the apps)."""
    ph = generate_phantom(params or DEMO_PARAMS)
    return write_demo_study(ph, workdir).dicom_dir
