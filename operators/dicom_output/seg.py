"""DICOM Segmentation (SEG) from a label map on a CT volume's grid, with highdicom; and the reverse (read a SEG
back onto the CT grid) for checks.

    result = write_seg(ct_volume, label_map, ORGANS, out_dir / "organs_seg.dcm",
                       algorithm_name="CorpusCT organ Res-UNet", model_versions={"organ_resunet": "1.0"})
    result.segments      # [SegmentInfo(number, label_id, name, n_voxels, tracking_uid), ...]
    result.skipped       # names of the requested labels that are empty in this label map (not written)
    label_map_back, numbers = read_seg_label_map("organs_seg.dcm", ct_volume, ORGANS)

* Binary segments, one per non-empty label of the label table (or of ``label_ids``), numbered 1..N in label
  id order. SegmentedPropertyCategory / Type: the table's SNOMED CT codes; RecommendedDisplayCIELabValue from
  the table's RGB (``highdicom.color.CIELabColor.from_rgb``); TrackingID = the label's name, a new TrackingUID
  per segment (the SR references segments by number and these identifiers).
* Algorithm identification: name, version (default ``provenance.code_version()``), family "Artificial
  Intelligence" (DCM 123110); model versions also go to SoftwareVersions.
* Frames are aligned with the source slices whatever their storage order: volume slice k is derived from
  the source SOP instance ``volume.meta.sop_instance_uids[k]`` (headers re-read by ``SourceSeries``), so
  each frame's ReferencedSOPInstanceUID and ImagePositionPatient are those of its source image. Empty frames
  are omitted (highdicom default).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from operators.common.labels import Label
from operators.common.provenance import code_version
from operators.common.volume import CTVolume

from .codes import coded
from .common import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MODEL_NAME,
    OutputIdentity,
    SourceSeries,
    WrittenObject,
    as_source,
    no_person_name_warnings,
    save_dataset,
)

log = logging.getLogger(__name__)

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
AI_FAMILY = ("123110", "Artificial Intelligence", "DCM")


@dataclass
class SegmentInfo:
    number: int  # SegmentNumber in the SEG (1..N)
    label_id: int  # id in the label table / label map
    name: str  # label name (TrackingID)
    n_voxels: int
    tracking_uid: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SegResult(WrittenObject):
    segments: list[SegmentInfo] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # requested labels that are empty (not written)
    source_series_instance_uid: str = ""

    def segment(self, name_or_id: str | int) -> SegmentInfo | None:
        for s in self.segments:
            if s.name == name_or_id or s.label_id == name_or_id:
                return s
        return None

    def to_json(self) -> dict:
        out = super().to_json()
        out.update(segments=[s.to_json() for s in self.segments], skipped_empty=list(self.skipped))
        return out


def _algorithm_identification(name: str, version: str, parameters: Mapping[str, str] | None):
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(name=name[:64], family=coded(AI_FAMILY), version=version[:64],
                                              parameters=dict(parameters) if parameters else None)


def build_seg(source: SourceSeries | CTVolume, label_map: np.ndarray, label_table: Sequence[Label], *,
              label_ids: Sequence[int] | None = None, algorithm_name: str = "CorpusCT",
              algorithm_version: str | None = None, algorithm_type: str = "AUTOMATIC",
              model_versions: Mapping[str, str] | None = None, description: str = "CorpusCT SEG",
              series_number: int = 901, content_label: str = "SEGMENTATION",
              content_creator_name: str | None = None):
    """highdicom ``Segmentation`` (not yet written) and the segment list; see the module docstring.

    label_map: (z, y, x) integer array on the CT volume's grid (same slice order as the volume).
    Returns (segmentation, segments, skipped_empty_names)."""
    import highdicom as hd

    src = as_source(source)
    lab = np.asarray(label_map)
    if lab.ndim != 3 or lab.shape[0] != len(src):
        raise ValueError(f"label map {lab.shape} does not match the {len(src)} source slices")
    rows, cols = int(src.first.Rows), int(src.first.Columns)
    if lab.shape[1:] != (rows, cols):
        raise ValueError(f"label map slices {lab.shape[1:]} do not match the source images {rows}x{cols}")
    if lab.dtype.kind not in "iub" or (lab.size and (lab.min() < 0 or lab.max() > 255)):
        raise ValueError("label map must hold integer label ids 0..255")
    lab = lab.astype(np.uint8, copy=False)
    wanted = [lt for lt in label_table if label_ids is None or lt.id in set(label_ids)]
    counts = np.bincount(lab.ravel(), minlength=256)
    present = [lt for lt in wanted if counts[lt.id] > 0]
    skipped = [lt.name for lt in wanted if counts[lt.id] == 0]
    if not present:
        raise ValueError("the label map holds none of the requested labels: no segment to write")
    version = algorithm_version or code_version()
    algo = _algorithm_identification(algorithm_name, version,
                                     {k: str(v) for k, v in (model_versions or {}).items()} or None)
    lut = np.zeros(256, np.uint8)
    descriptions, segments = [], []
    for number, lt in enumerate(present, start=1):
        lut[lt.id] = number
        tracking_uid = str(hd.UID())
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=lt.display[:64], segmented_property_category=coded(lt.category),
            segmented_property_type=coded(lt.code), algorithm_type=algorithm_type,
            algorithm_identification=algo, tracking_uid=tracking_uid, tracking_id=lt.name,
            display_color=hd.color.CIELabColor.from_rgb(*lt.rgb)))
        segments.append(SegmentInfo(number, lt.id, lt.name, int(counts[lt.id]), tracking_uid))
    ident = OutputIdentity(description, series_number, dict(model_versions or {}))
    with no_person_name_warnings():
        seg = hd.seg.Segmentation(
            source_images=src.datasets, pixel_array=lut[lab], segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=ident.series_instance_uid,
            series_number=int(series_number), sop_instance_uid=ident.sop_instance_uid, instance_number=1,
            manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME,
            software_versions=ident.software_versions, device_serial_number=DEVICE_SERIAL_NUMBER,
            content_label=content_label[:16].upper().replace(" ", "_"),
            content_description=ident.series_description, content_creator_name=content_creator_name,
            series_description=ident.series_description, omit_empty_frames=True)
    return seg, segments, skipped


def write_seg(source: SourceSeries | CTVolume, label_map: np.ndarray, label_table: Sequence[Label],
              out_path: str | Path, **kwargs) -> SegResult:
    """Build (``build_seg``) and write the SEG; returns what was written, with the empty labels skipped."""
    src = as_source(source)
    seg, segments, skipped = build_seg(src, label_map, label_table, **kwargs)
    path = save_dataset(seg, out_path)
    if skipped:
        log.info("SEG %s: %d segment(s); empty, not written: %s", path.name, len(segments), ", ".join(skipped))
    base = WrittenObject.of(seg, path, "SEG")
    return SegResult(**base.__dict__, segments=segments, skipped=skipped,
                     source_series_instance_uid=src.series_instance_uid)


# --- reading back -------------------------------------------------------------------------------------

def _segment_label_ids(seg: Dataset, label_table: Sequence[Label]) -> dict[int, int]:
    """SegmentNumber -> label id, by TrackingID (= label name), else by SegmentedPropertyTypeCode."""
    by_name = {lt.name: lt.id for lt in label_table}
    by_code = {lt.code.value: lt.id for lt in label_table}
    out = {}
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        lid = by_name.get(str(item.get("TrackingID", "")))
        if lid is None and "SegmentedPropertyTypeCodeSequence" in item:
            lid = by_code.get(str(item.SegmentedPropertyTypeCodeSequence[0].CodeValue))
        if lid is not None:
            out[number] = lid
    return out


def read_seg_label_map(seg: str | Path | Dataset, volume: CTVolume, label_table: Sequence[Label], *,
                       match: str = "sop") -> tuple[np.ndarray, dict[int, int]]:
    """Rebuild a (z, y, x) label map on ``volume``'s grid from a SEG (our own reading of the per-frame
    functional groups, independent of the writer).

    match="sop": each frame goes to the volume slice whose source SOP Instance UID it references
    (DerivationImageSequence / SourceImageSequence); match="position": to the slice whose centre is nearest
    to the frame's ImagePositionPatient (the volume's affine), checking that the in-plane position agrees.
    Returns (label_map uint8, {segment number: label id})."""
    ds = seg if isinstance(seg, Dataset) else pydicom.dcmread(str(seg))
    frames = np.asarray(ds.pixel_array)
    if frames.ndim == 2:
        frames = frames[None]
    numbers = _segment_label_ids(ds, label_table)
    out = np.zeros(volume.shape, np.uint8)
    slice_of_uid = {u: k for k, u in enumerate(volume.meta.sop_instance_uids)}
    inv = np.linalg.inv(volume.affine_lps)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()

    def group(fg: Dataset, name: str) -> Dataset:  # a functional group is per frame or shared by all frames
        return (fg if name in fg else shared)[name][0]

    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(group(fg, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        if number not in numbers:
            continue
        if match == "sop":
            src = group(fg, "DerivationImageSequence").SourceImageSequence[0]
            k = slice_of_uid.get(str(src.ReferencedSOPInstanceUID))
            if k is None:
                raise ValueError(f"frame {f + 1} references an image that is not in the volume")
        elif match == "position":
            ipp = np.asarray([float(v) for v in group(fg, "PlanePositionSequence").ImagePositionPatient] + [1.0])
            ijk = inv @ ipp
            if abs(ijk[0]) > 0.01 or abs(ijk[1]) > 0.01:
                raise ValueError(f"frame {f + 1} is not aligned with the volume's first row/column")
            k = int(round(ijk[2]))
            if abs(ijk[2] - k) > 0.01 or not 0 <= k < volume.shape[0]:
                raise ValueError(f"frame {f + 1} does not lie on a slice of the volume")
        else:
            raise ValueError(f"match must be 'sop' or 'position', not {match!r}")
        out[k][frames[f].astype(bool)] = numbers[number]
    return out, numbers
