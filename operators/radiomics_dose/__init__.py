"""Radiomics organ dose (papers/radiomics-fcn-organ-dose.txt).

features:    pyradiomics features of organ ROIs (107 per organ, 1 x 1 x 5 mm), robust to empty / tiny masks.
regions:     the head / chest / abdomen organ sets, CTDI phantoms, TCM factors and organ geometry inputs.
mc_segments: Monte Carlo organ doses per z segment (operators/mc_dose engine), combined into any range / TCM.
inference:   OrganDoseModel (models/organ_dose bundle) and predict_organ_doses -> mGy per organ.
report:      report page (PNG) and merging of Monte Carlo organ doses.
operator:    RadiomicsDoseOperator, OrganMasksOperator, OrganDoseMergeOperator (MONAI Deploy; imported on demand).
"""
