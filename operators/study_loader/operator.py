"""CorpusCT study loader: the SDK DICOMDataLoaderOperator, made robust to bad files.

Same ports and output type as the SDK loader (optional input ``input_folder``, output ``dicom_study_list``: a
list of SDK ``DICOMStudy`` with ``DICOMSeries`` / ``DICOMSOPInstance``), so SDK operators downstream work.
Differences (why it is a subclass rather than the SDK loader as is):
- every file is read and validated by ``operators.common.dicom_files`` (the SDK loader lets truncated files
  through: pydicom reads them without error and they fail later, at pixel decoding); unusable files are
  skipped with a warning naming the file and the reason; the list is attached to each study's metadata
  under ``corpusct_skipped_files`` (the selector reports it);
- instances at the same position are all kept (the SDK silently keeps one by AcquisitionNumber): the series
  selector reports and rejects such series instead; a second copy of the same SOP instance is skipped;
- a missing/empty folder or one with no usable DICOM raises ``BadInputError`` naming the folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.core import Fragment
from monai.deploy.core.domain import DICOMSeries, DICOMStudy
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

from operators.common.dicom_files import SKIPPED_FILES_KEY, FolderScan, scan_folder
from operators.common.errors import BadInputError


class CTStudyLoaderOperator(DICOMDataLoaderOperator):
    def __init__(self, fragment: Fragment, *args, input_folder: Path = DICOMDataLoaderOperator.DEFAULT_INPUT_FOLDER,
                 output_name: str = DICOMDataLoaderOperator.DEFAULT_OUTPUT_NAME, decode_compressed: bool = True,
                 **kwargs):
        self.decode_compressed = decode_compressed
        self.last_scan: FolderScan | None = None
        super().__init__(fragment, *args, input_folder=Path(input_folder), output_name=output_name,
                         must_load=True, **kwargs)
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")

    def compute(self, op_input, op_output, context):
        input_path = None
        try:
            input_path = op_input.receive(self.input_name)
        except Exception:  # noqa: BLE001 - optional port, nothing connected
            pass
        if not input_path or not Path(input_path).is_dir():
            input_path = self.input_path
        op_output.emit(self.load_data_to_studies(Path(input_path)), self.output_name)

    def load_data_to_studies(self, input_path: Path) -> list[DICOMStudy]:
        scan = scan_folder(input_path, decode_compressed=self.decode_compressed, log=self._logger)
        self.last_scan = scan
        skipped = [s.to_json() for s in scan.skipped]
        studies = []
        for study_uid, series_map in scan.grouped().items():
            study = DICOMStudy(study_uid)
            first = next(iter(series_map.values()))[0]
            self.populate_study_attributes(study, first)
            study.metadata()[SKIPPED_FILES_KEY] = skipped
            for series_uid, datasets in series_map.items():
                series = DICOMSeries(series_uid)
                self.populate_series_attributes(series, datasets[0])
                for ds in datasets:
                    series.add_sop_instance(ds)
                study.add_series(series)
            studies.append(study)
        if not studies:  # scan_folder raises first; kept for safety
            raise BadInputError(f"Input folder {input_path} holds no DICOM study.")
        return studies
