"""What every CorpusCT DICOM output shares: the source series headers, patient/study copying, equipment and
series identity, file writing (pure: pydicom + highdicom, no holoscan import).

* ``SourceSeries``: the headers (no pixel data) of the CT images a result was derived from, in the volume's
  slice order (``CTVolume.meta.sop_instance_uids``). Each volume slice k maps to its source SOP instance by
  UID, so the source files may be stored in any order (head-first, feet-first, shuffled).
* ``copy_patient_study(src, dst)``: root-level attributes of the Patient, Clinical Trial Subject, General
  Study, Patient Study and Clinical Trial Study modules (the module tables of the DICOM standard as shipped
  with highdicom), so every output sits in the source study of the source patient.
* ``OutputIdentity``: the new series (new SeriesInstanceUID, series number, description that always says
  "not for clinical use"), Manufacturer "CorpusCT", SoftwareVersions (code version, model versions).
* ``save_dataset(ds, path)``: writes atomically (temporary file + rename) with a DICOM file meta header.

Logs name files and UIDs only, never patient names, IDs or birth dates.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from operators.common.errors import BadInputError
from operators.common.provenance import SOFTWARE_NAME, code_version
from operators.common.volume import CTVolume

log = logging.getLogger(__name__)

MANUFACTURER = SOFTWARE_NAME  # "CorpusCT"
MODEL_NAME = "CorpusCT research software"
DEVICE_SERIAL_NUMBER = "NONE"  # software: no device serial number; highdicom requires a value
NOT_FOR_CLINICAL_USE_SUFFIX = " - not for clinical use"
IMPLEMENTATION_VERSION_NAME = "CORPUSCT"
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)

# Modules copied from the source (all at the root level of the dataset).
PATIENT_STUDY_MODULES = ("patient", "clinical-trial-subject", "general-study", "patient-study",
                         "clinical-trial-study")
# Fallback when highdicom's module tables are not importable (private API): the attributes that matter.
_FALLBACK_PATIENT_STUDY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "TypeOfPatientID", "PatientBirthDate", "PatientBirthTime",
    "PatientSex", "OtherPatientIDsSequence", "PatientComments", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence", "PatientSpeciesDescription",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "StudyDescription", "ProcedureCodeSequence", "AdmittingDiagnosesDescription",
    "PatientAge", "PatientSize", "PatientWeight", "PatientSizeCodeSequence", "MedicalAlerts", "Allergies",
    "SmokingStatus", "PregnancyStatus", "PatientState",
)


def _module_keywords(modules: Iterable[str]) -> tuple[str, ...]:
    try:
        from highdicom._standard_utils import get_module_attribute_map

        amap = get_module_attribute_map()
        out: list[str] = []
        for m in modules:
            out.extend(item["keyword"] for item in amap[m] if len(item["path"]) == 0)
        return tuple(dict.fromkeys(out))
    except Exception:  # noqa: BLE001 - private highdicom API moved: use the explicit list
        return _FALLBACK_PATIENT_STUDY


PATIENT_STUDY_KEYWORDS = _module_keywords(PATIENT_STUDY_MODULES)


def copy_patient_study(src: Dataset, dst: Dataset) -> Dataset:
    """Copy the root-level Patient / General Study / Patient Study (and clinical trial) attributes of ``src``
    into ``dst``. Type 2 attributes the source lacks are written empty so the output stays valid."""
    for kw in PATIENT_STUDY_KEYWORDS:
        if kw in src:
            dst[kw] = src[kw]  # same data element (tag, VR, value)
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
               "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if kw not in dst:
            setattr(dst, kw, "")
    if "SpecificCharacterSet" in src:
        dst.SpecificCharacterSet = src.SpecificCharacterSet
    return dst


def new_uid() -> str:
    """A new globally unique UID (highdicom's root + random part)."""
    import highdicom as hd

    return str(hd.UID())


def now() -> tuple[str, str]:
    """(DA, TM) of the current local time."""
    t = _dt.datetime.now()
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S")


def clinical_use_description(what: str) -> str:
    """SeriesDescription (LO, 64 characters at most) that always ends in "not for clinical use"."""
    room = 64 - len(NOT_FOR_CLINICAL_USE_SUFFIX)
    what = " ".join(str(what).split())[:room].rstrip(" -")
    return f"{what}{NOT_FOR_CLINICAL_USE_SUFFIX}"


def software_versions(model_versions: Mapping[str, str] | None = None) -> list[str]:
    """SoftwareVersions values (LO, 64 characters each): "CorpusCT <code version>", then "<model> <version>"."""
    out = [f"{SOFTWARE_NAME} {code_version()}"]
    for name, version in (model_versions or {}).items():
        out.append(f"{name} {version}"[:64])
    return [v[:64] for v in out]


@dataclass
class OutputIdentity:
    """Identity of a new output series: UIDs, number, description, equipment."""

    description: str  # what it is, e.g. "CorpusCT organ SEG"; the "not for clinical use" suffix is added
    series_number: int
    model_versions: dict[str, str] = field(default_factory=dict)
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    instance_number: int = 1

    def __post_init__(self):
        self.series_instance_uid = self.series_instance_uid or new_uid()
        self.sop_instance_uid = self.sop_instance_uid or new_uid()

    @property
    def series_description(self) -> str:
        return clinical_use_description(self.description)

    @property
    def software_versions(self) -> list[str]:
        return software_versions(self.model_versions)

    def apply_equipment(self, ds: Dataset) -> None:
        """General Equipment module."""
        ds.Manufacturer = MANUFACTURER
        ds.ManufacturerModelName = MODEL_NAME
        ds.DeviceSerialNumber = DEVICE_SERIAL_NUMBER
        ds.SoftwareVersions = self.software_versions

    def new_dataset(self, sop_class_uid: str, modality: str, source: Dataset) -> tuple[Dataset, str, str]:
        """A new instance of this series: SOP Common, patient and study copied from ``source``, General
        Series (modality, UID, number, date/time, description) and General Equipment filled in.
        Returns the dataset and the creation (date, time) for the modules that follow."""
        date, time = now()
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = sop_class_uid
        ds.SOPInstanceUID = self.sop_instance_uid
        ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
        copy_patient_study(source, ds)
        ds.Modality = modality
        ds.SeriesInstanceUID = self.series_instance_uid
        ds.SeriesNumber = int(self.series_number)
        ds.SeriesDate, ds.SeriesTime = date, time
        ds.SeriesDescription = self.series_description
        self.apply_equipment(ds)
        return ds, date, time


# --- source series -----------------------------------------------------------------------------------

@dataclass
class SourceSeries:
    """Headers (no pixel data) of the source CT images in the volume's slice order."""

    datasets: list[Dataset]

    def __post_init__(self):
        if not self.datasets:
            raise BadInputError("No source images: DICOM results need the headers of the CT images they "
                                "were derived from.")

    @classmethod
    def from_volume(cls, volume: CTVolume) -> SourceSeries:
        """Re-read the headers of ``volume.meta.source_files`` (stop before pixels) and order them as the
        volume's slices by SOP Instance UID (``volume.meta.sop_instance_uids``)."""
        meta = volume.meta
        files = [f for f in meta.source_files if f]
        if not files:
            raise BadInputError("The CT volume does not name its source files: DICOM results (SEG, SR, RT "
                                "Dose, PDF) cannot be linked to the source study.")
        by_uid: dict[str, Dataset] = {}
        for f in files:
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception as ex:  # noqa: BLE001
                raise BadInputError(f"Source image {Path(f).name} cannot be re-read ({type(ex).__name__}).") from None
            by_uid[str(ds.SOPInstanceUID)] = ds
        uids = list(meta.sop_instance_uids) or list(by_uid)
        missing = [u for u in uids if u not in by_uid]
        if missing:
            raise BadInputError(f"{len(missing)} source image(s) of the CT volume are no longer readable "
                                "(files moved or replaced).")
        if len(uids) != volume.shape[0]:
            raise BadInputError(f"The CT volume has {volume.shape[0]} slices but {len(uids)} source images.")
        return cls([by_uid[u] for u in uids])

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], sop_instance_uids: Sequence[str] | None = None) -> SourceSeries:
        dss = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in paths]
        if sop_instance_uids is not None:
            by_uid = {str(d.SOPInstanceUID): d for d in dss}
            dss = [by_uid[u] for u in sop_instance_uids]
        return cls(dss)

    @property
    def first(self) -> Dataset:
        return self.datasets[0]

    @property
    def study_instance_uid(self) -> str:
        return str(self.first.StudyInstanceUID)

    @property
    def series_instance_uid(self) -> str:
        return str(self.first.SeriesInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.first.get("FrameOfReferenceUID", ""))

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(d.SOPInstanceUID) for d in self.datasets]

    def __len__(self) -> int:
        return len(self.datasets)


def as_source(source: SourceSeries | CTVolume | Sequence[Dataset]) -> SourceSeries:
    if isinstance(source, SourceSeries):
        return source
    if isinstance(source, CTVolume):
        return SourceSeries.from_volume(source)
    return SourceSeries(list(source))


# --- geometry helper ----------------------------------------------------------------------------------

def to_volume_grid(array_zyx: np.ndarray, array_affine_lps: np.ndarray, volume_affine_lps: np.ndarray,
                   volume_shape: Sequence[int], atol_mm: float = 1e-2) -> np.ndarray:
    """Re-index an array that lies on the same voxel grid as a volume but in another storage order (slices
    head-first instead of feet-first, flipped rows, permuted axes: NIfTI ground truth of a DICOM series)
    into the volume's (z, y, x) order. No resampling: raises ``ValueError`` when the grids differ."""
    from operators.common.render import canonical_lps

    can_arr, aff_a = canonical_lps(np.asarray(array_zyx), array_affine_lps)
    idx = np.arange(int(np.prod(volume_shape)), dtype=np.int64).reshape(tuple(volume_shape))
    can_idx, aff_v = canonical_lps(idx, volume_affine_lps)
    if can_arr.shape != can_idx.shape or not np.allclose(aff_a, aff_v, atol=atol_mm):
        raise ValueError("the array is not on the volume's voxel grid (different size, spacing or origin)")
    out = np.empty(int(np.prod(volume_shape)), dtype=can_arr.dtype)
    out[can_idx.ravel()] = can_arr.ravel()
    return out.reshape(tuple(volume_shape))


# --- writing ------------------------------------------------------------------------------------------

def ensure_file_meta(ds: Dataset, transfer_syntax_uid: str = ExplicitVRLittleEndian) -> Dataset:
    fm = getattr(ds, "file_meta", None) or FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "TransferSyntaxUID" not in fm:
        fm.TransferSyntaxUID = transfer_syntax_uid
    if "ImplementationClassUID" not in fm:
        fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = fm
    return ds


def _umask() -> int:
    return _UMASK


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM file (with preamble and file meta), atomically: a crash never leaves a
    half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_file_meta(ds)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("Wrote %s (%s, SOP Instance UID %s)", path.name, ds.get("Modality", "?"), ds.SOPInstanceUID)
    return path


@dataclass
class WrittenObject:
    """One DICOM object written to disk (what the PACS sender and the SR references need)."""

    path: Path
    kind: str  # "SEG" | "SR" | "RTDOSE" | "PDF"
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str

    @classmethod
    def of(cls, ds: Dataset, path: Path, kind: str) -> WrittenObject:
        return cls(Path(path), kind, str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID),
                   str(ds.StudyInstanceUID))

    def to_json(self) -> dict:
        return {"file": self.path.name, "kind": self.kind, "sop_class_uid": self.sop_class_uid,
                "sop_instance_uid": self.sop_instance_uid, "series_instance_uid": self.series_instance_uid}


@contextlib.contextmanager
def no_person_name_warnings():
    """highdicom warns about single-component person names and quotes the name in the warning, which would put
    the patient's name into our logs. The name is copied unchanged from the source; the warning is dropped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*unlikely to represent the intended person name",
                                category=UserWarning)
        yield
