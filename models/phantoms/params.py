"""Parameters of the procedural phantom (patient, anatomy variation, scan and image settings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

REGIONS = ("whole", "head", "chest", "abdomen", "pelvis")
CONTRASTS = ("none", "arterial", "portal")
KERNELS = {"soft": 0.30, "standard": 0.45, "sharp": 0.80}  # noise-power cut-off (cycles/mm), see synthesis


def default_height_cm(age_years: float, sex: str) -> float:
    """Median standing height (cm) by age and sex (WHO / CDC growth references, rounded)."""
    ages = [2, 5, 8, 10, 12, 14, 16, 18, 40, 60, 85]
    male = [87, 110, 128, 139, 150, 164, 173, 176, 176, 175, 171]
    female = [86, 109, 127, 138, 151, 160, 162, 163, 163, 162, 157]
    return float(np.interp(age_years, ages, male if sex == "M" else female))


def default_bmi(age_years: float, sex: str) -> float:
    ages = [2, 5, 10, 15, 18, 30, 50, 70, 85]
    bmi = [16.5, 15.5, 17.0, 20.0, 21.5, 24.5, 26.5, 26.5, 25.0]
    return float(np.interp(age_years, ages, bmi)) - (0.3 if sex == "F" else 0.0)


@dataclass(frozen=True)
class PhantomParams:
    """What the phantom looks like and how it is scanned.

    Patient: ``sex`` "F" | "M"; ``age_years`` 2-90 (children have bigger heads, shorter legs, red marrow,
    a large thymus; the elderly lose muscle and bone density); ``height_cm`` (default: median for age/sex);
    ``bmi`` or ``weight_kg`` (default BMI for age/sex). ``arms`` "down" (beside the body) | "up".
    ``variation`` scales the seeded random anatomical variation (organ size/position, diaphragm, bowel).

    Scan: ``region`` whole (vertex to soles) | head | chest | abdomen | pelvis; ``slice_thickness_mm``
    (slice profile FWHM) and ``slice_spacing_mm`` (default = thickness); ``matrix`` (square) and
    ``pixel_size_mm`` (default: the field of view ``fov_mm``, itself defaulting to the body's width for
    the region, divided by the matrix); ``contrast`` none | arterial | portal; ``kernel`` soft | standard |
    sharp; ``noise_hu`` image noise SD at the reference size (default 12 HU at 5 mm, scaled by
    1/sqrt(thickness)); ``psf_fwhm_mm`` in-plane blur; ``kvp``; ``table`` adds the patient couch;
    ``z_supersample`` sub-slices per slice for the slice-profile partial volume (default: slices of at most
    ~2 mm, odd, at most 5).
    """

    seed: int = 0
    sex: str = "M"
    age_years: float = 45.0
    height_cm: float | None = None
    weight_kg: float | None = None
    bmi: float | None = None
    arms: str = "auto"
    variation: float = 1.0
    region: str = "whole"
    slice_thickness_mm: float = 5.0
    slice_spacing_mm: float | None = None
    matrix: int = 256
    pixel_size_mm: float | None = None
    fov_mm: float | None = None
    contrast: str = "none"
    kernel: str = "standard"
    noise_hu: float | None = None
    psf_fwhm_mm: float = 0.9
    kvp: float = 120.0
    table: bool = True
    z_supersample: int | None = None

    def resolved(self) -> PhantomParams:
        """Copy with defaults filled in (height, BMI, weight, spacing) and values validated."""
        sex = str(self.sex).upper()[:1]
        if sex not in ("F", "M"):
            raise ValueError(f"sex must be F or M, got {self.sex!r}")
        if not 1.0 <= float(self.age_years) <= 100.0:
            raise ValueError(f"age must be between 1 and 100 years, got {self.age_years}")
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {CONTRASTS}, got {self.contrast!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {tuple(KERNELS)}, got {self.kernel!r}")
        if self.arms not in ("auto", "down", "up"):
            raise ValueError(f"arms must be 'auto', 'down' or 'up', got {self.arms!r}")
        arms = self.arms if self.arms != "auto" else ("down" if self.region in ("whole", "head") else "up")
        age = float(self.age_years)
        h = float(self.height_cm) if self.height_cm else default_height_cm(age, sex)
        if not 70.0 <= h <= 220.0:
            raise ValueError(f"height must be 70-220 cm, got {h}")
        if self.weight_kg and self.bmi:
            if abs(float(self.weight_kg) / (h / 100.0) ** 2 - float(self.bmi)) > 0.05:
                raise ValueError("give weight or BMI, not both (they disagree)")
        if self.weight_kg:
            bmi = float(self.weight_kg) / (h / 100.0) ** 2
        else:
            bmi = float(self.bmi) if self.bmi else default_bmi(age, sex)
        if not 12.0 <= bmi <= 50.0:
            raise ValueError(f"BMI must be 12-50, got {bmi:.1f}")
        weight = bmi * (h / 100.0) ** 2
        if not 0.3 <= float(self.slice_thickness_mm) <= 20.0:
            raise ValueError(f"slice thickness must be 0.3-20 mm, got {self.slice_thickness_mm}")
        if not 16 <= int(self.matrix) <= 1024:
            raise ValueError(f"matrix must be 16-1024, got {self.matrix}")
        spacing = float(self.slice_spacing_mm) if self.slice_spacing_mm else float(self.slice_thickness_mm)
        if self.z_supersample is not None and not 1 <= int(self.z_supersample) <= 9:
            raise ValueError(f"z_supersample must be 1-9, got {self.z_supersample}")
        return replace(self, sex=sex, age_years=age, arms=arms, height_cm=round(h, 2), bmi=round(bmi, 3),
                       weight_kg=round(weight, 2), slice_spacing_mm=spacing, matrix=int(self.matrix))

    def to_json(self) -> dict:
        return asdict(self)
