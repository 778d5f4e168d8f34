"""The range selector's findings as TID 1500 measurement groups (written by operators/dicom_output/sr.py).

Three groups: the scan range on the ICRP-110 reference body (cm, with its uncertainty and the phantom), the
body parts the scan covers (coded with the declared private scheme: no standard codes exist for these 24
parts), and the patient estimates (age, sex, weight), each stated as a model estimate.
"""

from __future__ import annotations

import math

from operators.common.labels import BODY_PART_BY_NAME, PRIVATE_SCHEME, Code, body_part_code
from operators.dicom_output.codes import TARGET_REGION
from operators.dicom_output.sr import Evaluation, MeasurementGroup, Quantity

from .range_selector import ScanRange

SCAN_START = Code("RS01", "Scan start on ICRP-110 reference body", PRIVATE_SCHEME)
SCAN_END = Code("RS02", "Scan end on ICRP-110 reference body", PRIVATE_SCHEME)
RANGE_UNCERTAINTY = Code("RS03", "Scan range uncertainty", PRIVATE_SCHEME)
REFERENCE_PHANTOM = Code("RS04", "ICRP-110 reference phantom", PRIVATE_SCHEME)
BODY_PART_EXAMINED = Code("RS05", "Body part examined (DICOM defined term)", PRIVATE_SCHEME)
ESTIMATED_AGE = Code("PE01", "Estimated age (model estimate, not for clinical use)", PRIVATE_SCHEME)
ESTIMATED_WEIGHT = Code("PE02", "Estimated body weight (model estimate, not for clinical use)", PRIVATE_SCHEME)
ESTIMATED_SEX = Code("PE03", "Estimated sex (model estimate, not for clinical use)", PRIVATE_SCHEME)
SEX_PROBABILITY = Code("PE04", "Probability of the estimated sex", PRIVATE_SCHEME)
FEMALE = Code("248152002", "Female")
MALE = Code("248153007", "Male")


def range_measurement_groups(sr: ScanRange) -> list[MeasurementGroup]:
    reference = "ICRP-110 adult reference computational phantom " + sr.phantom + " (ICRP Publication 110, 2009)"
    groups = [
        MeasurementGroup(
            tracking_id="scan range",
            measurements=[Quantity(SCAN_START, round(sr.start_cm, 1), "cm"),
                          Quantity(SCAN_END, round(sr.end_cm, 1), "cm"),
                          Quantity(RANGE_UNCERTAINTY, round(sr.uncertainty_cm, 1), "cm")],
            evaluations=[Evaluation(REFERENCE_PHANTOM, reference + "; cm above the soles"),
                         Evaluation(BODY_PART_EXAMINED, sr.body_part_examined() or "none")]),
        MeasurementGroup(
            tracking_id="covered body parts",
            evaluations=[Evaluation(TARGET_REGION, body_part_code(BODY_PART_BY_NAME[n]))
                         for n in sr.covered_body_parts]),
    ]
    est = [Quantity(m, round(v, 1), u) for m, v, u in ((ESTIMATED_AGE, sr.age_years, "a"),
                                                         (ESTIMATED_WEIGHT, sr.weight_kg, "kg"))
           if math.isfinite(v)]
    est.append(Quantity(SEX_PROBABILITY, round(sr.sex_probability, 3), "1"))
    groups.append(MeasurementGroup(tracking_id="patient estimates", measurements=est,
                                   evaluations=[Evaluation(ESTIMATED_SEX, FEMALE if sr.sex == "F" else MALE)]))
    return [g for g in groups if g.measurements or g.evaluations]
