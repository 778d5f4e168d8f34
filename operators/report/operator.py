"""Report operator: the study's results dicts (+ CT and label maps) -> ``report.html``, ``report.pdf`` and the
PDF bytes for the DICOM Encapsulated PDF writer, plus the combined results dict for results.json.

    ReportOperator(app, output_folder=OUT, sections=("range", "body_composition"),
                   images=("body_composition_labels",), written=("body_composition_seg", ...), timings=timings)

Inputs: ``ct_volume`` (CTVolume); one port per name in ``sections`` (a results dict; see document.py for the
names the report knows: range, organs, body_composition, organ_dose); one per name in ``images``
(``organ_labels``, ``body_composition_labels``: label maps on the CT grid); one per name in ``written``
(writer results or file lists: their file names are listed in the report and results.json, after
``extra_files``, the names of other files the app writes).
Outputs (no receiver needed): ``pdf_bytes`` (for PDFWriterOperator), ``results`` (combined results.json dict),
``report`` (the ReportDocument). The work is ``make_report()``, callable without the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.provenance import provenance

from .document import NOT_RUN, ReportDocument, build_report
from .render import render_html, render_pdf

IMAGE_PORTS = {"organ_labels": "organ_labels", "body_composition_labels": "body_composition_labels"}
log = logging.getLogger(__name__)


def _file_names(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value).name]
    if hasattr(value, "path"):
        return [Path(value.path).name]
    out: list[str] = []
    for v in value:
        out.extend(_file_names(v))
    return out


def make_report(results: Mapping[str, Mapping | None], output_folder: str | Path, *, ct=None,
                images: Mapping | None = None, timings=None, outputs: Sequence[str] = (), app_name: str = "whole_body",
                html_name: str = "report.html", pdf_name: str = "report.pdf",
                dicom_pdf_name: str | None = "report_pdf.dcm") -> tuple[ReportDocument, bytes, dict]:
    """Build and write the report (HTML, PDF) into ``output_folder``; returns (document, PDF bytes, combined
    results dict for results.json). ``timings``: an ``OperatorTimings`` (its dict is shared, so results.json
    carries every operator that finished before it was written) or a plain mapping."""
    out = Path(output_folder)
    out.mkdir(parents=True, exist_ok=True)
    images = dict(images or {})
    files = list(outputs) + [html_name, pdf_name] + ([dicom_pdf_name] if dicom_pdf_name else [])
    timing_dict = timings.seconds if hasattr(timings, "seconds") else dict(timings or {})
    doc = build_report(results, ct=ct, organ_labels=images.get("organ_labels"),
                       body_composition_labels=images.get("body_composition_labels"), timings=dict(timing_dict),
                       outputs=files)
    (out / html_name).write_text(render_html(doc), encoding="utf-8")
    pdf = render_pdf(doc)
    (out / pdf_name).write_bytes(pdf)
    models: dict[str, str] = {}
    for r in results.values():
        models.update(((r or {}).get("provenance") or {}).get("models") or {})
    combined = {
        "app": app_name,
        "sections": {s.key: ("present" if s.present else s.note or NOT_RUN) for s in doc.sections},
        **{k: v for k, v in results.items() if v is not None},
        "report": doc.to_json(),
        "outputs": files,
        "timing_s": timing_dict,
        "source": {"study_instance_uid": ct.meta.study_instance_uid,
                   "series_instance_uid": ct.meta.series_instance_uid} if ct is not None else {},
        "provenance": provenance(app_name, models),
    }
    return doc, pdf, combined


class ReportOperator(Operator):
    def __init__(self, fragment: Fragment, *args, output_folder: Path, sections: Sequence[str] = ("range",),
                 images: Sequence[str] = (), written: Sequence[str] = (), extra_files: Sequence[str] = (),
                 timings=None, app_name: str = "whole_body",
                 html_name: str = "report.html", pdf_name: str = "report.pdf",
                 dicom_pdf_name: str | None = "report_pdf.dcm", **kwargs):
        unknown = [i for i in images if i not in IMAGE_PORTS]
        if unknown:
            raise ValueError(f"unknown report image port(s) {unknown}; known: {sorted(IMAGE_PORTS)}")
        self.output_folder, self.sections, self.images = Path(output_folder), tuple(sections), tuple(images)
        self.written, self.extra_files = tuple(written), list(extra_files)
        self.timings, self.app_name = timings, app_name
        self.html_name, self.pdf_name, self.dicom_pdf_name = html_name, pdf_name, dicom_pdf_name
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("ct_volume")
        for port in (*self.sections, *self.images, *self.written):
            spec.input(port)
        for port in ("pdf_bytes", "results", "report"):
            spec.output(port).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        ct = op_input.receive("ct_volume")
        results = {name: op_input.receive(name) for name in self.sections}
        images = {name: op_input.receive(name) for name in self.images}
        files: list[str] = list(self.extra_files)
        for name in self.written:
            files += _file_names(op_input.receive(name))
        doc, pdf, combined = make_report(results, self.output_folder, ct=ct, images=images, timings=self.timings,
                                         outputs=files, app_name=self.app_name, html_name=self.html_name,
                                         pdf_name=self.pdf_name, dicom_pdf_name=self.dicom_pdf_name)
        self._log.info("Report: %s", ", ".join(f"{s.key} {'included' if s.present else s.note}"
                                               for s in doc.sections))
        op_output.emit(pdf, "pdf_bytes")
        op_output.emit(combined, "results")
        op_output.emit(doc, "report")
