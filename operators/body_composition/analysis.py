"""One study's body-composition analysis from a predicted label map: waist (bone anatomy), L3 level, patient
height / weight / sex with their sources, metrics (metrics.py). Pure numpy; no holoscan.

    result = analyse(vol, labels, scan_range=sr)     # sr: GrayNet ScanRange or None
"""

from __future__ import annotations

from operators.common.errors import MissingAnatomyError
from operators.common.volume import CTVolume

from .metrics import (
    BodyCompositionResult,
    Patient,
    Waist,
    compute_metrics,
    waist_from_bone,
    waist_from_landmarks,
)

# L3 (middle of the vertebral body) as a fraction of the waist length below the lowest rib: the procedural
# phantom's anatomy (lowest rib 1173, L3 1100, iliac crest 1054 mm in the default adult); stated as an estimate.
L3_WAIST_FRACTION = 0.61


def median_height_m(age_years: float, sex: str) -> float:
    from models.phantoms.params import default_height_cm

    return default_height_cm(float(age_years), sex) / 100.0


def patient_of(vol: CTVolume, scan_range=None) -> Patient:
    """Sex, height and weight: DICOM header (PatientSex, PatientSize, PatientWeight) first, else GrayNet."""
    m = vol.meta
    p = Patient()
    if (m.patient_sex or "").upper() in ("M", "F"):
        p.sex, p.sex_source = m.patient_sex.upper(), "DICOM PatientSex"
    elif scan_range is not None:
        p.sex, p.sex_source = scan_range.sex, f"GrayNet estimate (p={scan_range.sex_probability:.2f})"
    if m.patient_weight_kg and m.patient_weight_kg > 0:
        p.weight_kg, p.weight_source = float(m.patient_weight_kg), "DICOM PatientWeight"
    elif scan_range is not None and scan_range.weight_kg == scan_range.weight_kg:
        p.weight_kg, p.weight_source = float(scan_range.weight_kg), "GrayNet estimate"
    if m.patient_size_m and m.patient_size_m > 0:
        p.height_m, p.height_source = float(m.patient_size_m), "DICOM PatientSize"
    elif scan_range is not None and p.sex in ("M", "F"):
        age = scan_range.age_years if scan_range.age_years == scan_range.age_years else 45.0
        p.height_m = median_height_m(age, p.sex)
        p.height_source = (f"estimate: median adult height for GrayNet age {age:.0f} y and sex {p.sex} "
                           "(GrayNet gives no height)")
    return p


def analyse(vol: CTVolume, labels, scan_range=None, landmarks: dict | None = None,
            patient: Patient | None = None) -> BodyCompositionResult:
    """Metrics of one predicted label map. ``landmarks`` (lowest_rib, iliac_crest[, l3] z in mm) override the
    bone-anatomy waist (tests, phantoms with known anatomy)."""
    patient = patient or patient_of(vol, scan_range)
    spacing = vol.spacing_mm
    z = vol.slice_z_mm
    try:
        if landmarks:
            waist: Waist | None = waist_from_landmarks(z, spacing[0], landmarks, source="given landmarks")
        else:
            # bone from HU (> 250 HU inside the predicted body): the network's bone class is not yet reliable
            waist = waist_from_bone(labels, spacing, z, bone_mask=vol.hu > 250.0,
                                    source="bone anatomy: CT > 250 HU inside the predicted body contour; ribs and "
                                           "iliac wings = bone > 60 mm lateral to the body midline")
    except MissingAnatomyError as exc:
        return compute_metrics(labels, spacing, z, waist=None, patient=patient, reason=str(exc))
    if landmarks and landmarks.get("l3") is not None:
        l3, l3_src = float(landmarks["l3"]), "given landmark"
    else:
        l3 = waist.superior_z_mm - L3_WAIST_FRACTION * waist.length_mm
        l3_src = (f"estimate: {L3_WAIST_FRACTION:.2f} of the waist length below the lowest rib "
                  "(no vertebra labelling)")
    return compute_metrics(labels, spacing, z, waist=waist, l3_z_mm=l3, l3_source=l3_src, patient=patient)
