"""CorpusCT's DICOM output layer: one set of writers every app uses (pure modules, no holoscan import).

    from operators.dicom_output import SourceSeries, write_seg, write_organ_volume_report, write_rt_dose, ...

* ``seg``: DICOM SEG with highdicom (binary segments, SNOMED CT codes, display colours, algorithm
  identification, frames aligned with the source slices); ``read_seg_label_map`` reads one back.
* ``sr``: TID 1500 measurement reports (Comprehensive 3D SR, highdicom) from generic measurement groups;
  ``organ_volume_groups`` / ``write_organ_volume_report``; ``measurement_table`` reads one back.
* ``rtdose``: RT Dose (pydicom; highdicom has no RT Dose) for dose grids in Gy.
* ``pdf``: Encapsulated PDF (pydicom) for report PDFs; ``render_text_pdf`` makes a simple one.
* ``common``: source headers, patient/study copy, series identity ("not for clinical use"), atomic writes.

All outputs share the source StudyInstanceUID and patient module, get new SeriesInstanceUIDs, name
Manufacturer "CorpusCT" and the code and model versions, and pass ``dciodvfy`` without errors
(tests/test_dicom_output.py). Operators: ``operators.dicom_output.operator`` (imports holoscan).
"""

from .common import (
    OutputIdentity,
    SourceSeries,
    WrittenObject,
    copy_patient_study,
    save_dataset,
    to_volume_grid,
)
from .pdf import build_encapsulated_pdf, read_encapsulated_pdf, render_text_pdf, write_encapsulated_pdf
from .rtdose import DoseGrid, build_rt_dose, read_rt_dose, write_rt_dose
from .seg import SegmentInfo, SegResult, build_seg, read_seg_label_map, write_seg
from .sr import (
    Evaluation,
    MeasurementGroup,
    Quantity,
    SegmentRef,
    SRResult,
    build_measurement_report,
    measurement_table,
    organ_volume_groups,
    write_measurement_report,
    write_organ_volume_report,
)

__all__ = [
    "DoseGrid", "Evaluation", "MeasurementGroup", "OutputIdentity", "Quantity", "SRResult", "SegResult", "SegmentInfo",
    "SegmentRef", "SourceSeries", "WrittenObject", "build_encapsulated_pdf", "build_measurement_report",
    "build_rt_dose", "build_seg", "copy_patient_study", "measurement_table", "organ_volume_groups",
    "read_encapsulated_pdf", "read_rt_dose", "read_seg_label_map", "render_text_pdf", "save_dataset",
    "to_volume_grid", "write_encapsulated_pdf", "write_measurement_report", "write_organ_volume_report",
    "write_rt_dose", "write_seg",
]
