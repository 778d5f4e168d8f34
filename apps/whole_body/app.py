"""Whole-body app: one graph from the study folder to every result CorpusCT makes, and one human-readable report.

    intake (loader -> series selector -> series to volume)
      -> GrayNet range (body parts, age / sex / weight estimates, ICRP-110 scan range; gates the rest)
      -> body composition (waist and L3 metrics; a scan without the waist gives status "not_evaluable" with the
         reason, the report says "not in field of view" and everything else still runs)
      -> organ segmentation (one Res-UNet per organ, only organs inside the range; the others are reported
         "not in field of view") -> anchor post-process -> organ results, overlay, organ SEG
      -> radiomics organ dose (features -> per-region networks; RDSR or header dose parameters) -> organ-dose SR
      -> writers: range SR, body-composition SEG + SR (referencing the SEG)
      -> report (report.html, report.pdf) -> DICOM Encapsulated PDF (report_pdf.dcm, references the source series)
      -> results.json (every section, report summary, outputs, per-operator times) + selection_report.json
      -> optional PACS sender (off unless app.yaml configuration.pacs.host or $CORPUSCT_PACS_HOST is set)

The report and results.json take whichever sections are wired into ``compose()``'s three tables
(``sections``, ``images``, ``written``); a section that is not wired says "not run". Every operator is
wrapped by ``timed()`` so results.json and the report's provenance carry each compute's wall time
(``app.timings`` holds all of them after ``run()``).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from apps.base import CorpusCTApp
from operators.body_composition.operator import BodyCompositionOperator
from operators.common.labels import ALL_ORGANS
from operators.dicom_output.operator import PDFWriterOperator, SegWriterOperator, SRWriterOperator
from operators.organ_segmentation.inference import bundle_versions
from operators.organ_segmentation.operator import OrganResultsOperator
from operators.pacs_sender.operator import PacsSenderOperator
from operators.pacs_sender.sender import PacsDestination
from operators.radiomics_dose.operator import RadiomicsDoseOperator
from operators.report.operator import ReportOperator
from operators.report.timing import OperatorTimings, timed

APP_NAME = "whole_body"
APP_YAML = Path(__file__).resolve().parent / "app.yaml"


def app_configuration(path: str | Path | None = None) -> dict:
    """The ``configuration`` mapping of the app's app.yaml ($HOLOSCAN_CONFIG_PATH in a MAP, else the one
    beside this file); empty when there is none."""
    p = Path(path or os.environ.get("HOLOSCAN_CONFIG_PATH") or APP_YAML)
    if not p.is_file():
        return {}
    return dict((yaml.safe_load(p.read_text()) or {}).get("configuration") or {})


def pacs_destination(config: dict) -> PacsDestination | None:
    """The PACS to send to: app.yaml ``configuration.pacs`` completed from $CORPUSCT_PACS_*; None when no host
    is configured anywhere (the default: nothing is sent, the results stay in the output folder)."""
    return PacsDestination.from_config(dict(config.get("pacs") or {}))


class WholeBodyApp(CorpusCTApp):
    def __init__(self, *args, config: dict | None = None, **kwargs):
        self.timings = OperatorTimings()
        self.config = app_configuration() if config is None else dict(config)
        super().__init__(*args, **kwargs)

    APP_NAME = APP_NAME

    def make(self, cls, *args, **kwargs):
        """Construct operator ``cls`` with its compute timed into ``self.timings``."""
        return timed(cls, self.timings)(self, *args, **kwargs)

    def compose(self):
        out, md = self.output_dir, self.models_dir
        selector, to_volume = self.compose_intake()
        graynet = self.compose_range(to_volume)
        range_sr = self.make(SRWriterOperator, output_folder=out, filename="range_sr.dcm",
                           description="CorpusCT GrayNet body parts and scan range",
                           algorithm_name="CorpusCT GrayNet range selector", model_versions=graynet.model_versions(),
                           name="range_sr_writer")
        self.add_flow(to_volume, range_sr, {("ct_volume", "ct_volume")})
        self.add_flow(graynet, range_sr, {("measurement_groups", "measurement_groups")})

        bodycomp = self.make(BodyCompositionOperator, models_dir=md, output_folder=out, app_name=APP_NAME,
                           name="body_composition")
        self.add_flow(graynet, bodycomp, {("scan_range", "scan_range")})
        bc_seg = self.make(SegWriterOperator, output_folder=out, label_table="body_composition",
                         algorithm_name="CorpusCT body composition 3D U-Net", name="body_composition_seg_writer")
        bc_sr = self.make(SRWriterOperator, output_folder=out, filename="body_composition_sr.dcm", reference_seg=True,
                        algorithm_name="CorpusCT body composition", description="CorpusCT body composition",
                        name="body_composition_sr_writer")
        self.add_flow(bodycomp, bc_seg, {("ct_volume", "ct_volume"), ("label_map", "label_map")})
        self.add_flow(bodycomp, bc_sr, {("ct_volume", "ct_volume"), ("measurement_groups", "measurement_groups")})
        self.add_flow(bc_seg, bc_sr, {("seg", "seg")})

        # What the report and results.json take: {report port: (operator, its output port)}.
        sections = {"range": (graynet, "results"), "body_composition": (bodycomp, "results")}
        images = {"body_composition_labels": (bodycomp, "label_map")}
        written = {"range_sr": (range_sr, "dicom_files"), "body_composition_seg": (bc_seg, "dicom_files"),
                   "body_composition_sr": (bc_sr, "dicom_files")}

        # Organs: per-organ Res-UNets inside the GrayNet range -> anchor post-process -> SEG, results, overlay.
        anchor = self.compose_organs(graynet, self.config.get("organs"))
        organ_results = self.make(OrganResultsOperator, output_folder=out, app_name=APP_NAME, name="organ_results")
        self.add_flow(anchor, organ_results, {("segmentation", "segmentation")})
        organ_seg = self.make(SegWriterOperator, output_folder=out, label_table=ALL_ORGANS, filename="organs_seg.dcm",
                            algorithm_name="CorpusCT organ segmentation (2D Res-UNet per organ)",
                            model_versions=bundle_versions(md, self.config.get("organs")),
                            description="CorpusCT organ segmentation", name="organ_seg_writer")
        self.add_flow(anchor, organ_seg, {("ct_volume", "ct_volume"), ("label_map", "label_map")})
        sections["organs"] = (organ_results, "results")
        images["organ_labels"] = (anchor, "label_map")
        written["organs_seg"] = (organ_seg, "dicom_files")

        # Organ doses: radiomics features of the segmented organs -> per-region networks (dose parameters from
        # the study's RDSR when present, else the image headers) -> SR; the report shows them beside CTDIvol/SSDE.
        dose = self.make(RadiomicsDoseOperator, models_dir=md, app_name=APP_NAME, study_folder=self.input_dir,
                       name="radiomics_dose")
        self.add_flow(anchor, dose, {("ct_volume", "ct_volume"), ("label_map", "label_map")})
        dose_sr = self.make(SRWriterOperator, output_folder=out, filename="organ_dose_sr.dcm",
                          algorithm_name="CorpusCT radiomics organ dose", description="CorpusCT organ dose",
                          name="organ_dose_sr_writer")
        self.add_flow(anchor, dose_sr, {("ct_volume", "ct_volume")})
        self.add_flow(dose, dose_sr, {("measurement_groups", "measurement_groups")})
        sections["organ_dose"] = (dose, "results")
        written["organ_dose_sr"] = (dose_sr, "dicom_files")
        # Monte Carlo is the organ-dose app's reference option (apps/organ_dose --mc); the whole-body app runs the
        # network only, to stay within its time budget.

        report = self.make(ReportOperator, output_folder=out, sections=tuple(sections), images=tuple(images),
                         written=tuple(written), timings=self.timings, app_name=APP_NAME, name="report",
                         extra_files=("results.json", "selection_report.json", "body_composition.png", "organs.png"))
        self.add_flow(to_volume, report, {("ct_volume", "ct_volume")})
        for port, (src, src_port) in {**sections, **images, **written}.items():
            self.add_flow(src, report, {(src_port, port)})
        pdf_writer = self.make(PDFWriterOperator, output_folder=out, filename="report_pdf.dcm",
                             title="CorpusCT whole-body CT report", description="CorpusCT whole-body report",
                             model_versions=graynet.model_versions(), name="report_pdf_writer")
        self.add_flow(to_volume, pdf_writer, {("ct_volume", "ct_volume")})
        self.add_flow(report, pdf_writer, {("pdf_bytes", "pdf_bytes")})
        self.compose_results_writer(selector, report)

        destination = pacs_destination(self.config)
        if destination is not None:
            dicom = {**written, "report_pdf": (pdf_writer, "dicom_files")}
            sender = self.make(PacsSenderOperator, input_names=tuple(dicom), destination=destination, name="pacs_sender")
            for port, (src, src_port) in dicom.items():
                self.add_flow(src, sender, {(src_port, port)})
