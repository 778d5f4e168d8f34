"""TID 1500 measurement groups (operators.dicom_output.sr) for a body-composition result, UCUM units."""

from __future__ import annotations

from operators.common.labels import BODY_COMPOSITION, PRIVATE_SCHEME, Code
from operators.dicom_output import codes as C
from operators.dicom_output.sr import Evaluation, MeasurementGroup, Quantity

from .metrics import BodyCompositionResult

P = PRIVATE_SCHEME
SMI = Code("10001", "Skeletal muscle index", P)
BFI = Code("10002", "Body fat index", P)
WAIST_AVG = Code("10003", "Average over the waist (lowest rib to iliac crest)", P)
L3_SLICE = Code("10004", "Single slice at L3", P)
WAIST_LENGTH = Code("10005", "Waist length", P)
STATUS = Code("10006", "Body composition status", P)
FLAG_LOW_SMI = Code("10007", "Low skeletal muscle index", P)
FLAG_HIGH_BFI = Code("10008", "High body fat index", P)
SOURCES = Code("10009", "Sources of height, weight, sex and waist", P)
BC = {lab.name: lab for lab in BODY_COMPOSITION}
FAT = Code("256674009", "Fat")


def measurement_groups(res: BodyCompositionResult) -> list[MeasurementGroup]:
    p = res.patient
    groups = [MeasurementGroup("status", evaluations=[
        Evaluation(STATUS, res.status + (f": {res.reason}" if res.reason else "")),
        Evaluation(SOURCES, f"height: {p.height_source}; weight: {p.weight_source}; sex: {p.sex_source}; "
                            f"waist: {res.waist_source or 'n/a'}; L3: {res.l3_source or 'n/a'}"),
        Evaluation(FLAG_LOW_SMI, str(res.flags.get("low_smi"))),
        Evaluation(FLAG_HIGH_BFI, str(res.flags.get("high_bfi")))])]
    for name, v in res.volumes_cm3.items():
        lab = BC[name]
        groups.append(MeasurementGroup(f"volume_{name}", finding_type=lab.code,
                                       measurements=[Quantity(C.VOLUME, float(v), "cm3")]))
    for where, d, meth in (("waist", res.waist, WAIST_AVG), ("l3", res.l3, L3_SLICE)):
        if not d:
            continue
        m = [Quantity(C.AREA, d["sma_cm2"], "cm2", method=meth)]
        if d.get("smi_cm2_m2") is not None:
            m.append(Quantity(C.AREA, d["smi_cm2_m2"], "cm2/m2", method=SMI))
        groups.append(MeasurementGroup(f"{where}_muscle", finding_type=BC["muscle"].code, measurements=m))
        f = [Quantity(C.AREA, d["bfa_cm2"], "cm2", method=meth)]
        if d.get("bfi_cm2_kg") is not None:
            f.append(Quantity(C.AREA, d["bfi_cm2_kg"], "cm2/kg", method=BFI))
        groups.append(MeasurementGroup(f"{where}_fat", finding_type=FAT, measurements=f))
    if res.waist:
        groups.append(MeasurementGroup("waist", measurements=[Quantity(WAIST_LENGTH, res.waist["length_cm"], "cm")]))
    return groups
