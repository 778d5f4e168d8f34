"""Synthetic CT: the procedural whole-body phantom (no external data) and its DICOM demo study.

Public API::

    from models.phantoms import PhantomParams, generate_phantom, write_demo_study, write_ct_series

    ph = generate_phantom(PhantomParams(seed=1, sex="F", age_years=30, bmi=28, region="abdomen"))
    ph.ct                 # CTVolume: HU float32 (z, y, x), LPS affine, metadata (TCM, CTDIvol, patient)
    ph.organs             # uint8 ORGANS ids, ph.body_composition: uint8 BODY_COMPOSITION ids
    ph.landmarks_mm       # z (mm) of every labels.LANDMARKS name
    ph.body_parts         # per slice: list of BODY_PARTS names
    write_demo_study(ph, "out")   # out/dicom (localizer, axial, coronal MPR) + out/labels (NIfTI, JSON)

    python -m models.phantoms demo --out DIR [--region ...] [--seed N] [--sex F|M] [--age Y] [--bmi X]

Domain code only (numpy / scipy / pydicom / nibabel); no holoscan import.
"""

from .dicom_export import (
    StudyInfo,
    tube_current_modulation,
    uid_from,
    write_ct_series,
)
from .params import PhantomParams
from .phantom import Phantom, generate_phantom
from .study import DEMO_PARAMS, DemoStudy, demo_study, write_demo_study

__all__ = [
    "DEMO_PARAMS", "DemoStudy", "Phantom", "PhantomParams", "StudyInfo", "demo_study", "generate_phantom",
    "tube_current_modulation", "uid_from", "write_ct_series", "write_demo_study",
]
