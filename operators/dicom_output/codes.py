"""Coded concepts used by the writers, and conversion of CorpusCT ``labels.Code`` to highdicom concepts.

Codes are given as ``operators.common.labels.Code`` (value, meaning, scheme), pydicom ``Code``, highdicom
``CodedConcept`` or a ``(value, meaning, scheme)`` tuple; ``coded()`` turns any of them into a
``highdicom.sr.CodedConcept``. Units are UCUM codes (``unit("ml")``).
"""

from __future__ import annotations

from operators.common.labels import Code

# Measurement names.
VOLUME = Code("118565006", "Volume")
AREA = Code("42798000", "Area")
MEAN = Code("373098007", "Mean")  # derivation
ATTENUATION_COEFFICIENT = Code("112031", "Attenuation Coefficient", "DCM")  # with MEAN: mean HU
ORGAN_DOSE = Code("113518", "Organ Dose", "DCM")
ABSORBED_DOSE = Code("128513", "Absorbed Dose", "DCM")
TARGET_REGION = Code("123014", "Target Region", "DCM")
FINDING_SITE = Code("363698007", "Finding Site")
CT_UNSPECIFIED_BODY_REGION = Code("25045-6", "CT unspecified body region", "LN")
IMAGING_MEASUREMENT_REPORT = Code("126000", "Imaging Measurement Report", "DCM")

# UCUM units: code -> meaning.
UCUM_UNITS = {
    "ml": "milliliter",
    "cm3": "cubic centimeter",
    "mm3": "cubic millimeter",
    "cm2": "square centimeter",
    "cm2/m2": "square centimeter per square meter",
    "cm2/kg": "square centimeter per kilogram",
    "[hnsf'U]": "Hounsfield unit",
    "mGy": "milligray",
    "Gy": "gray",
    "mSv": "millisievert",
    "mm": "millimeter",
    "cm": "centimeter",
    "kg": "kilogram",
    "a": "year",
    "%": "percent",
    "1": "no units",
    "{ratio}": "ratio",
}


def coded(code):
    """``highdicom.sr.CodedConcept`` from a labels.Code, pydicom Code, CodedConcept or (value, meaning, scheme)."""
    from highdicom.sr import CodedConcept

    if isinstance(code, CodedConcept):
        return code
    if isinstance(code, tuple) and not isinstance(code, Code):
        value, meaning, scheme = (tuple(code) + ("SCT",))[:3]
        return CodedConcept(value=value, meaning=meaning, scheme_designator=scheme)
    if isinstance(code, Code):
        return CodedConcept(value=code.value, meaning=code.meaning, scheme_designator=code.scheme)
    # pydicom.sr.coding.Code
    return CodedConcept(value=code.value, meaning=code.meaning, scheme_designator=code.scheme_designator,
                        scheme_version=getattr(code, "scheme_version", None))


def unit(ucum_code: str, meaning: str | None = None):
    """UCUM unit concept, e.g. ``unit("ml")``, ``unit("cm2/m2")``, ``unit("mGy")``."""
    from highdicom.sr import CodedConcept

    meaning = meaning or UCUM_UNITS.get(ucum_code)
    if meaning is None:
        raise ValueError(f"unknown UCUM unit {ucum_code!r}: give its meaning")
    return CodedConcept(value=ucum_code, meaning=meaning, scheme_designator="UCUM")
