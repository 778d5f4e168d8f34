"""Encapsulated PDF Storage for a report PDF, built with pydicom (highdicom has no encapsulated document class).

The SDK's ``DICOMEncapsulatedPDFWriterOperator`` (4.0.0) was checked first on the demo study: ``dciodvfy``
reports an error (empty type 1 Manufacturer in the SOP Common module's contributing equipment) and warnings
for attributes outside the IOD (BodyPartExamined, DeviceUID, RequestedProcedureID); it also writes Modality
OT and ConversionType "SD" (scanned document) for a generated report, and has no place for model versions
in SoftwareVersions. This writer follows the Encapsulated PDF IOD (PS3.3 A.45.1) and passes ``dciodvfy``
with no errors and no warnings.

    pdf = render_text_pdf("CorpusCT organ report", ["Liver: 1520 ml", ...])   # one A4 page, matplotlib
    result = write_encapsulated_pdf(pdf, ct_volume, out_dir / "report_pdf.dcm", title="CorpusCT organ report")

Modules: Patient, General Study, Patient Study (copied from the source CT), Encapsulated Document Series
(Modality DOC, new series, "not for clinical use"), General Equipment (Manufacturer "CorpusCT", software and
model versions), SC Equipment (ConversionType WSD: workstation), Encapsulated Document (title, concept name,
MIME type, length, SourceInstanceSequence = the CT images), SOP Common.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import EncapsulatedPDFStorage

from operators.common.volume import CTVolume

from .common import (
    OutputIdentity,
    SourceSeries,
    WrittenObject,
    as_source,
    save_dataset,
)

log = logging.getLogger(__name__)

# LOINC 18748-4 "Diagnostic imaging report" as the document's concept name.
DOCUMENT_CONCEPT = ("18748-4", "LN", "Diagnostic imaging report")


def check_pdf(pdf: bytes) -> int:
    """Number of pages of a PDF; ``ValueError`` if the bytes are not a readable PDF."""
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("not a PDF document (no %PDF- header)")
    try:
        from pypdf import PdfReader

        n = len(PdfReader(io.BytesIO(pdf)).pages)
    except Exception as ex:  # noqa: BLE001
        raise ValueError(f"unreadable PDF ({type(ex).__name__}: {ex})") from None
    if n < 1:
        raise ValueError("PDF has no pages")
    return n


def render_text_pdf(title: str, lines: Sequence[str], *, footer: str = "CorpusCT - research use only, "
                    "not for clinical use") -> bytes:
    """A one-page A4 PDF with a title and lines of text (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.08, 0.94, title, fontsize=16, weight="bold", va="top")
    y = 0.89
    for line in lines:
        fig.text(0.08, y, line, fontsize=10, va="top", family="monospace")
        y -= 0.022
        if y < 0.08:
            fig.text(0.08, y, "...", fontsize=10, va="top")
            break
    fig.text(0.08, 0.04, footer, fontsize=8, color="0.3")
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={"Creator": "CorpusCT", "Title": title})
    plt.close(fig)
    return buf.getvalue()


def build_encapsulated_pdf(pdf: bytes, source: SourceSeries | CTVolume, *, title: str = "CorpusCT report",
                           model_versions: Mapping[str, str] | None = None,
                           description: str = "CorpusCT report PDF", series_number: int = 931) -> Dataset:
    check_pdf(pdf)
    src = as_source(source)
    ref = src.first
    ident = OutputIdentity(description, series_number, dict(model_versions or {}))
    # SOP Common, Patient, Study, Encapsulated Document Series, General Equipment
    ds, date, time = ident.new_dataset(EncapsulatedPDFStorage, "DOC", ref)
    ds.ConversionType = "WSD"  # SC Equipment
    # Encapsulated Document
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    ds.BurnedInAnnotation = "YES"  # a report names the patient's study
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = title[:64]
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = DOCUMENT_CONCEPT
    ds.ConceptNameCodeSequence = [concept]
    ds.VerificationFlag = "UNVERIFIED"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    sources = []
    for d in src.datasets:
        it = Dataset()
        it.ReferencedSOPClassUID = d.SOPClassUID
        it.ReferencedSOPInstanceUID = d.SOPInstanceUID
        sources.append(it)
    ds.SourceInstanceSequence = sources
    data = bytes(pdf)
    ds.EncapsulatedDocumentLength = len(data)
    if len(data) % 2:
        data += b"\x00"  # OB values have even length; EncapsulatedDocumentLength keeps the true size
    ds.EncapsulatedDocument = data
    return ds


def write_encapsulated_pdf(pdf: bytes | str | Path, source: SourceSeries | CTVolume, out_path: str | Path,
                           **kwargs) -> WrittenObject:
    data = Path(pdf).read_bytes() if isinstance(pdf, (str, Path)) else bytes(pdf)
    ds = build_encapsulated_pdf(data, source, **kwargs)
    path = save_dataset(ds, out_path)
    return WrittenObject.of(ds, path, "PDF")


def read_encapsulated_pdf(path_or_ds) -> bytes:
    """The PDF bytes of an Encapsulated PDF instance (padding removed)."""
    import pydicom

    ds = path_or_ds if isinstance(path_or_ds, Dataset) else pydicom.dcmread(str(path_or_ds))
    data = bytes(ds.EncapsulatedDocument)
    n = int(ds.get("EncapsulatedDocumentLength", len(data)) or len(data))
    return data[:n]
