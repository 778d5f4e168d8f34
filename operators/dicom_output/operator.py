"""Thin writer operators over ``operators.dicom_output`` (the science is in seg.py, sr.py, rtdose.py, pdf.py).

Each writes one DICOM object into the ``output_folder`` given at construction (the app launcher publishes
that folder only when the whole app succeeded) and emits ``dicom_files`` (list of written paths, for the
PACS sender) plus its result object. Output ports need no receiver.

    SegWriterOperator            in: ct_volume (CTVolume), label_map ((z, y, x) ids on the CT grid)
                                 out: seg (SegResult), dicom_files
    OrganVolumeSRWriterOperator  in: ct_volume, label_map, seg (SegResult; omit with reference_seg=False)
                                 out: sr (SRResult), dicom_files
    SRWriterOperator             in: ct_volume, measurement_groups (list[MeasurementGroup]),
                                     seg (with reference_seg=True) -> out: sr, dicom_files
    RTDoseWriterOperator         in: ct_volume, dose_grid (DoseGrid, or a (z, y, x) Gy array on the CT grid)
                                 out: rtdose (WrittenObject), dicom_files
    PDFWriterOperator            in: ct_volume, pdf_bytes (bytes or a path) -> out: pdf (WrittenObject), dicom_files
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.labels import BODY_COMPOSITION, ORGANS, Label

from .common import SourceSeries
from .pdf import write_encapsulated_pdf
from .rtdose import DoseGrid, write_rt_dose
from .seg import write_seg
from .sr import write_measurement_report, write_organ_volume_report

LABEL_TABLES = {"organs": ORGANS, "body_composition": BODY_COMPOSITION}


def _table(label_table: str | Sequence[Label]) -> tuple[Label, ...]:
    return tuple(LABEL_TABLES[label_table] if isinstance(label_table, str) else label_table)


class _WriterOperator(Operator):
    """Common construction: output folder, file name, model versions, series number."""

    result_port = "result"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, filename: str,
                 model_versions: Mapping[str, str] | None = None, series_number: int | None = None,
                 description: str | None = None, **kwargs):
        self.output_folder = Path(output_folder)
        self.filename = filename
        self.model_versions = dict(model_versions or {})
        self.series_number = series_number
        self.series_description_text = description
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def _options(self) -> dict:
        out: dict = {"model_versions": self.model_versions}
        if self.series_number is not None:
            out["series_number"] = int(self.series_number)
        if self.series_description_text:
            out["description"] = self.series_description_text
        return out

    def _outputs(self, spec: OperatorSpec) -> None:
        spec.output(self.result_port).condition(ConditionType.NONE)
        spec.output("dicom_files").condition(ConditionType.NONE)

    def _emit(self, op_output, result) -> None:
        op_output.emit(result, self.result_port)
        op_output.emit([result.path], "dicom_files")


class SegWriterOperator(_WriterOperator):
    result_port = "seg"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, label_table: str | Sequence[Label] = ORGANS,
                 label_ids: Sequence[int] | None = None, filename: str | None = None,
                 algorithm_name: str = "CorpusCT", **kwargs):
        self.label_table = _table(label_table)
        self.label_ids = list(label_ids) if label_ids is not None else None
        self.algorithm_name = algorithm_name
        default = "body_composition_seg.dcm" if self.label_table == BODY_COMPOSITION else "organs_seg.dcm"
        super().__init__(fragment, *args, output_folder=output_folder, filename=filename or default, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("label_map")
        self._outputs(spec)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        labels = np.asarray(op_input.receive("label_map"))
        result = write_seg(SourceSeries.from_volume(vol), labels, self.label_table,
                           self.output_folder / self.filename, label_ids=self.label_ids,
                           algorithm_name=self.algorithm_name, **self._options())
        self._emit(op_output, result)


class SRWriterOperator(_WriterOperator):
    """TID 1500 report of the measurement groups it receives (``operators.dicom_output.sr``)."""

    result_port = "sr"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, filename: str = "measurements_sr.dcm",
                 reference_seg: bool = False, algorithm_name: str = "CorpusCT", **kwargs):
        self.reference_seg = bool(reference_seg)
        self.algorithm_name = algorithm_name
        super().__init__(fragment, *args, output_folder=output_folder, filename=filename, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("measurement_groups")
        if self.reference_seg:
            spec.input("seg")
        self._outputs(spec)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        groups = op_input.receive("measurement_groups")
        refs = [op_input.receive("seg").path] if self.reference_seg else []
        result = write_measurement_report(SourceSeries.from_volume(vol), groups, self.output_folder / self.filename,
                                          referenced_objects=refs, algorithm_name=self.algorithm_name,
                                          **self._options())
        self._emit(op_output, result)


class OrganVolumeSRWriterOperator(_WriterOperator):
    """Organ volumes (ml) and mean HU from a label map, referencing the SEG's segments."""

    result_port = "sr"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, filename: str = "organ_volumes_sr.dcm",
                 label_table: str | Sequence[Label] = ORGANS, reference_seg: bool = True,
                 algorithm_name: str = "CorpusCT", **kwargs):
        self.label_table = _table(label_table)
        self.reference_seg = bool(reference_seg)
        self.algorithm_name = algorithm_name
        super().__init__(fragment, *args, output_folder=output_folder, filename=filename, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("label_map")
        if self.reference_seg:
            spec.input("seg")
        self._outputs(spec)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        labels = np.asarray(op_input.receive("label_map"))
        seg = op_input.receive("seg") if self.reference_seg else None
        opts = self._options()
        opts.setdefault("description", "CorpusCT organ volumes SR")
        result = write_organ_volume_report(vol, labels, self.output_folder / self.filename,
                                           label_table=self.label_table, seg=seg,
                                           source=SourceSeries.from_volume(vol),
                                           algorithm_name=self.algorithm_name, **opts)
        self._emit(op_output, result)


class RTDoseWriterOperator(_WriterOperator):
    result_port = "rtdose"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, filename: str = "dose_rtdose.dcm", **kwargs):
        super().__init__(fragment, *args, output_folder=output_folder, filename=filename, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("dose_grid")
        self._outputs(spec)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        grid = op_input.receive("dose_grid")
        if not isinstance(grid, DoseGrid):
            grid = DoseGrid(np.asarray(grid), vol.affine_lps)
        result = write_rt_dose(grid.dose_gy, grid.affine_lps, SourceSeries.from_volume(vol),
                               self.output_folder / self.filename, n_histories=grid.n_histories,
                               uncertainty_percent=grid.uncertainty_percent, comment=grid.comment,
                               **self._options())
        self._emit(op_output, result)


class PDFWriterOperator(_WriterOperator):
    result_port = "pdf"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, filename: str = "report_pdf.dcm",
                 title: str = "CorpusCT report", **kwargs):
        self.title = title
        super().__init__(fragment, *args, output_folder=output_folder, filename=filename, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        spec.input("pdf_bytes")
        self._outputs(spec)

    def compute(self, op_input, op_output, context):
        vol = op_input.receive("ct_volume")
        pdf = op_input.receive("pdf_bytes")
        result = write_encapsulated_pdf(pdf, SourceSeries.from_volume(vol), self.output_folder / self.filename,
                                        title=self.title, **self._options())
        self._emit(op_output, result)
