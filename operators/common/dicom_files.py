"""Reading a folder of DICOM files robustly: the pure part of the study loader (no holoscan import).

Every file under the folder (recursively) is read with pydicom. Files that cannot be used are skipped with
a logged warning naming the file (basename only) and the reason, never a patient identifier:

- not DICOM (no preamble/'DICM' prefix, or unparsable),
- truncated (pixel data shorter than Rows x Columns x samples x bytes x frames, or image header without
  pixel data),
- compressed pixel data that cannot be decoded (no decoder for the transfer syntax, or a corrupt stream):
  compressed images are decoded here once; pydicom caches the array, so the series-to-volume step does not
  decode them a second time,
- missing Study/Series/SOP Instance UID, a DICOMDIR, or a second copy of an instance already read.

A folder that does not exist, holds no files, or holds no usable DICOM raises ``BadInputError`` naming it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .errors import BadInputError

logger = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Study metadata key under which the study loader lists the files it skipped (the selector reports them).
SKIPPED_FILES_KEY = "corpusct_skipped_files"


class UnusableFileError(Exception):
    """A file that is skipped; the message is the human-readable reason."""


@dataclass
class SkippedFile:
    name: str  # basename only (paths may embed patient names in some PACS exports)
    reason: str

    def to_json(self) -> dict:
        return {"file": self.name, "reason": self.reason}


@dataclass
class FolderScan:
    """What a folder gave: usable instances (first-seen order) and the files skipped with their reasons."""

    folder: Path
    datasets: list[pydicom.Dataset] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    n_files: int = 0

    def grouped(self) -> dict[str, dict[str, list[pydicom.Dataset]]]:
        return group_by_study_series(self.datasets)


def list_files(folder: str | Path) -> list[Path]:
    """All regular files under ``folder``, recursively, in a deterministic (sorted) order."""
    out: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out.extend(Path(root) / f for f in sorted(files))
    return out


def _expected_native_bytes(ds: pydicom.Dataset) -> int:
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.BitsAllocated)
    n_bits = rows * cols * samples * frames * bits
    return (n_bits + 7) // 8


def check_pixel_data(ds: pydicom.Dataset, decode_compressed: bool = True) -> None:
    """Raise ``UnusableFileError`` when an image's pixel data is missing, truncated or undecodable.

    Non-image instances (SR, presentation states, ...: no Rows/Columns) pass unchanged."""
    has_pixels = any(k in ds for k in PIXEL_KEYWORDS)
    is_image = "Rows" in ds and "Columns" in ds
    if not is_image:
        if has_pixels:
            raise UnusableFileError("pixel data without Rows/Columns (header truncated or corrupt)")
        return
    if not has_pixels:
        raise UnusableFileError("image without pixel data (file truncated?)")
    if "BitsAllocated" not in ds:
        raise UnusableFileError("image without BitsAllocated (header corrupt)")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is None:
        raise UnusableFileError("no transfer syntax in the file meta information")
    if "PixelData" not in ds:  # float pixel data: always native
        return
    if not tsyntax.is_compressed:
        value = ds.PixelData
        got, need = len(value or b""), _expected_native_bytes(ds)
        if got < need:
            raise UnusableFileError(f"truncated pixel data ({got} of {need} bytes)")
        return
    if not decode_compressed:
        return
    try:
        arr = ds.pixel_array  # decoded once here; pydicom caches the array on the dataset
    except Exception as ex:  # noqa: BLE001 - any decoder failure means the image is unusable
        name = getattr(tsyntax, "name", str(tsyntax))
        raise UnusableFileError(f"compressed pixel data ({name}) cannot be decoded: "
                                f"{type(ex).__name__}: {_short(ex)}") from None
    if arr.shape[-2:] != (int(ds.Rows), int(ds.Columns)):
        raise UnusableFileError(f"decoded pixel array shape {arr.shape} does not match Rows x Columns")


def _short(ex: Exception, n: int = 160) -> str:
    s = " ".join(str(ex).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def read_instance(path: str | Path, decode_compressed: bool = True) -> pydicom.Dataset:
    """Read and validate one file. Raises ``UnusableFileError`` with the reason when it must be skipped."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnusableFileError("empty file")
        ds = pydicom.dcmread(str(path))
    except UnusableFileError:
        raise
    except InvalidDicomError:
        raise UnusableFileError("not a DICOM file (no 'DICM' prefix / file meta information)") from None
    except Exception as ex:  # noqa: BLE001 - pydicom raises many types on corrupt/truncated input
        raise UnusableFileError(f"unreadable DICOM ({type(ex).__name__}: {_short(ex)})") from None
    if not getattr(ds, "file_meta", None) or "TransferSyntaxUID" not in ds.file_meta:
        raise UnusableFileError("no transfer syntax in the file meta information")
    if ds.get("SOPClassUID", None) == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise UnusableFileError("DICOMDIR (media directory), not an instance")
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        try:
            value = ds.get(kw, None)
        except Exception:  # noqa: BLE001
            value = None
        if not value:
            raise UnusableFileError(f"missing {kw} (file truncated or not a composite instance)")
    try:
        check_pixel_data(ds, decode_compressed=decode_compressed)
    except UnusableFileError:
        raise
    except Exception as ex:  # noqa: BLE001 - malformed values in group 0028
        raise UnusableFileError(f"corrupt image header ({type(ex).__name__}: {_short(ex)})") from None
    return ds


def scan_folder(folder: str | Path, decode_compressed: bool = True,
                log: logging.Logger | None = None) -> FolderScan:
    """Read every file under ``folder``; skip (with a warning) what cannot be used.

    Raises ``BadInputError`` naming the folder when it is missing, empty, or holds no usable DICOM."""
    log = log or logger
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"Input folder {folder} does not exist or is not a folder.")
    files = list_files(folder)
    scan = FolderScan(folder=folder, n_files=len(files))
    if not files:
        raise BadInputError(f"Input folder {folder} is empty: no DICOM files to process.")
    seen: dict[str, str] = {}
    for path in files:
        try:
            ds = read_instance(path, decode_compressed=decode_compressed)
            sop_uid = str(ds.SOPInstanceUID)
            if sop_uid in seen:
                raise UnusableFileError(f"second copy of an instance already read from {seen[sop_uid]}")
            seen[sop_uid] = path.name
        except UnusableFileError as ex:
            scan.skipped.append(SkippedFile(path.name, str(ex)))
            log.warning("Skipped file %s: %s", path.name, ex)
            continue
        scan.datasets.append(ds)
    if not scan.datasets:
        reasons = sorted({s.reason for s in scan.skipped})
        raise BadInputError(
            f"Input folder {folder} holds no usable DICOM instance ({len(files)} file(s) examined, all "
            f"skipped: {'; '.join(reasons[:5])}{' ...' if len(reasons) > 5 else ''}).")
    if scan.skipped:
        log.warning("Read %d DICOM instance(s) from %s; skipped %d file(s).", len(scan.datasets),
                    folder, len(scan.skipped))
    return scan


def group_by_study_series(datasets) -> dict[str, dict[str, list[pydicom.Dataset]]]:
    """{StudyInstanceUID: {SeriesInstanceUID: [datasets]}} in first-seen order."""
    out: dict[str, dict[str, list[pydicom.Dataset]]] = {}
    for ds in datasets:
        out.setdefault(str(ds.StudyInstanceUID), {}).setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    return out
