"""The report document of one study: sections built from the apps' results dicts (and images when given).

    doc = build_report({"series": ..., "range": ..., "organs": ..., "body_composition": ..., "organ_dose": ...},
                       ct=ct_volume, organ_labels=..., body_composition_labels=..., timings={...})
    doc.sections            # [Section], in report order; each present, or absent with a one-line note
    doc.to_json()           # what results.json carries about the report (no images)

Inputs (each optional; a missing one makes its section a one-line "not run" note):

* ``series``: the series-selector / volume summary (``SeriesToVolume`` results: series, volume, acquisition);
* ``range``: GrayNet range results (scan_range_icrp110_cm, body_part_examined, covered_body_parts, age_years,
  sex, sex_probability, weight_kg, provenance);
* ``organs``: ``{"organs": {name: {"volume_ml", "mean_hu", "status"}}}`` (issue #4);
* ``body_composition``: body-composition results (status, reason, waist, l3, flags, cutoffs, sex, ...);
* ``organ_dose``: ``{"organ_doses_mgy": {name: {"dose", "method", "uncertainty"}}, "ctdivol_mgy", "ssde_mgy",
  "dose_source"}`` (issue #7).

No patient name, ID or birth date is read or written here: the report names the study by its UIDs only.
Pure domain code (numpy, matplotlib); no holoscan import.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from operators.common.provenance import NOT_FOR_CLINICAL_USE, SOFTWARE_NAME, code_version

from . import figures

SECTION_ORDER = ("scan", "organs", "body_composition", "organ_dose", "provenance")
TITLES = {"scan": "Scan and scan range", "organs": "Organs", "body_composition": "Body composition",
          "organ_dose": "Organ doses", "provenance": "Provenance"}
NOT_RUN = "not run"
NOT_IN_FOV = "not in field of view"


@dataclass
class Figure:
    name: str  # file-name stem (page PNGs, HTML ids)
    png: bytes
    caption: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    title: str = ""


@dataclass
class Section:
    key: str
    title: str
    present: bool
    note: str = ""  # the one-line status ("not run", "not in field of view: ...") or a remark
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "present" if self.present else (self.note or NOT_RUN)


@dataclass
class ReportDocument:
    title: str
    study_line: str  # study / series UIDs (no patient identifiers)
    generated_utc: str
    sections: list[Section]
    disclaimer: str = NOT_FOR_CLINICAL_USE

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)

    def to_json(self) -> dict:
        return {"title": self.title, "generated_utc": self.generated_utc, "disclaimer": self.disclaimer,
                "sections": {s.key: {"title": s.title, "present": s.present, "note": s.note,
                                     "figures": [f.name for f in s.figures]} for s in self.sections}}


# --- formatting -----------------------------------------------------------------------------------------------

def fmt(value, digits: int = 1, unit: str = "") -> str:
    """A number for a table cell ("-" for missing / NaN)."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, (int, float, np.floating, np.integer)):
        v = float(value)
        if v != v:
            return "-"
        return f"{v:.{digits}f}{(' ' + unit) if unit else ''}"
    return str(value)


def _human(name: str) -> str:
    return str(name).replace("_", " ")


# --- sections ---------------------------------------------------------------------------------------------------

def _scan_section(series: Mapping | None, rng: Mapping | None, ct) -> Section:
    s = Section("scan", TITLES["scan"], present=bool(series or rng or ct is not None))
    if not s.present:
        s.note = NOT_RUN
        return s
    rows = []
    acq = dict((series or {}).get("acquisition") or {})
    vol = dict((series or {}).get("volume") or {})
    if ct is not None:
        m = ct.meta
        acq.setdefault("kvp", m.kvp)
        acq.setdefault("ctdivol_mgy", m.ctdivol_mgy)
        acq.setdefault("convolution_kernel", m.convolution_kernel)
        vol.setdefault("shape_zyx", list(ct.shape))
        vol.setdefault("spacing_mm_zyx", [round(float(v), 3) for v in ct.spacing_mm])
        z = ct.slice_z_mm
        vol.setdefault("z_coverage_mm", float(abs(z[-1] - z[0]) + ct.spacing_mm[0]) if len(z) else None)
    if vol.get("shape_zyx"):
        nz, ny, nx = vol["shape_zyx"]
        sp = vol.get("spacing_mm_zyx") or [None] * 3
        rows.append(["Series", f"{nz} axial slices of {ny} x {nx}; spacing {fmt(sp[0], 2)} mm (z), "
                               f"{fmt(sp[1], 2)} x {fmt(sp[2], 2)} mm"])
    if vol.get("z_coverage_mm") is not None:
        rows.append(["Scan length", fmt(float(vol["z_coverage_mm"]) / 10.0, 1, "cm")])
    if acq.get("kvp") is not None or acq.get("ctdivol_mgy") is not None:
        rows.append(["Acquisition", f"{fmt(acq.get('kvp'), 0)} kVp, CTDIvol {fmt(acq.get('ctdivol_mgy'), 2)} mGy, "
                                    f"kernel {acq.get('convolution_kernel') or '-'}"])
    if rng:
        r = rng.get("scan_range_icrp110_cm") or {}
        rows.append(["Body part examined", str(rng.get("body_part_examined") or "-")])
        rows.append(["Covered body parts", ", ".join(_human(p) for p in rng.get("covered_body_parts") or []) or "-"])
        if r:
            rows.append(["Scan range (ICRP-110 " + str(r.get("phantom", "?")) + ")",
                         f"{fmt(r.get('start'))} to {fmt(r.get('end'))} cm above the soles "
                         f"(+-{fmt(r.get('uncertainty'))} cm; {r.get('method', '?')})"])
        sexp = rng.get("sex_probability")
        rows.append(["Estimates (GrayNet)", f"age {fmt(rng.get('age_years'), 0)} y, sex {rng.get('sex') or '-'}"
                                            f" (p={fmt(sexp, 2)}), weight {fmt(rng.get('weight_kg'), 0)} kg"])
        s.paragraphs.append("Age, sex and weight are estimates of a model trained on synthetic phantoms, "
                            "not measurements.")
        if r and r.get("start") is not None:
            s.figures.append(Figure("scan_range", figures.range_diagram_png(r, rng.get("covered_body_parts")),
                                    "Scan range on the ICRP-110 reference body (dark band: range, light band: "
                                    "+- uncertainty)"))
    else:
        s.note = "GrayNet range " + NOT_RUN
    s.tables.append(Table(["Item", "Value"], rows))
    return s


def _organ_section(organs: Mapping | None, ct, labels, label_table) -> Section:
    s = Section("organs", TITLES["organs"], present=bool(organs and organs.get("organs")))
    if not s.present:
        s.note = "organ segmentation " + NOT_RUN
        return s
    rows, outside, absent = [], [], []
    for name, o in organs["organs"].items():
        st = str(o.get("status", ""))
        if st == NOT_IN_FOV:
            outside.append(_human(name))
            continue
        if st != "segmented":
            absent.append(f"{_human(name)} ({st})")
            continue
        rows.append([_human(name), fmt(o.get("volume_ml"), 1), fmt(o.get("mean_hu"), 0), st])
    s.tables.append(Table(["Organ", "Volume (ml)", "Mean HU", "Status"], rows, "Segmented organs"))
    if outside:
        s.paragraphs.append(f"{NOT_IN_FOV.capitalize()} (not segmented): " + ", ".join(outside) + ".")
    if absent:
        s.paragraphs.append("Inside the scan but not found: " + ", ".join(absent) + ".")
    if not rows:
        s.note = "no organ segmented: every requested organ is " + NOT_IN_FOV if outside else "no organ segmented"
    if ct is not None and labels is not None and np.any(labels):
        s.figures.append(Figure("organ_overlay", figures.organ_overlay_png(ct, labels, label_table),
                                "Organ masks on the CT: axial slices through the largest organs and a coronal view "
                                "(patient right on the viewer's left)"))
    return s


def _body_composition_section(bc: Mapping | None, ct, labels) -> Section:
    s = Section("body_composition", TITLES["body_composition"], present=False)
    if not bc:
        s.note = "body composition " + NOT_RUN
        return s
    if bc.get("status") != "complete" or not bc.get("waist"):
        s.note = f"waist {NOT_IN_FOV}: " + (bc.get("reason") or "the scan does not cover the whole waist") + \
                 " (no waist metrics, indices or flags)"
        return s
    s.present = True
    w, l3, flags = bc["waist"], bc.get("l3") or {}, bc.get("flags") or {}
    sex = bc.get("sex")
    cut = bc.get("cutoffs") or {}
    smi_cut = (cut.get("smi_cm2_m2") or {}).get(sex) if sex else None
    bfi_cut = (cut.get("bfi_cm2_kg") or {}).get(sex) if sex else None

    def flag(v):
        return "not assessed (sex unknown)" if v is None else ("YES" if v else "no")

    s.tables.append(Table(["Metric", "Waist (average)", "L3 slice", "Cut-off", "Flag"], [
        ["Skeletal muscle area SMA (cm2)", fmt(w.get("sma_cm2")), fmt(l3.get("sma_cm2")), "", ""],
        ["Body fat area BFA (cm2)", fmt(w.get("bfa_cm2")), fmt(l3.get("bfa_cm2")), "", ""],
        ["  subcutaneous / visceral (cm2)", f"{fmt(w.get('sfa_cm2'))} / {fmt(w.get('avfa_cm2'))}",
         f"{fmt(l3.get('sfa_cm2'))} / {fmt(l3.get('avfa_cm2'))}", "", ""],
        ["Skeletal muscle index SMI (cm2/m2)", fmt(w.get("smi_cm2_m2")), fmt(l3.get("smi_cm2_m2")),
         f"low if < {fmt(smi_cut)}" if smi_cut else "-", flag(flags.get("low_smi"))],
        ["Body fat index BFI (cm2/kg)", fmt(w.get("bfi_cm2_kg"), 2), fmt(l3.get("bfi_cm2_kg"), 2),
         f"high if > {fmt(bfi_cut)}" if bfi_cut else "-", flag(flags.get("high_bfi"))],
    ], "Waist metrics against the cut-offs"))
    s.tables.append(Table(["Item", "Value", "Source"], [
        ["Waist", f"{fmt(w.get('length_cm'))} cm (z {fmt(w.get('inferior_z_mm'), 0)} to "
                  f"{fmt(w.get('superior_z_mm'), 0)} mm)", str(bc.get("waist_source") or "-")],
        ["L3 level", f"z {fmt(l3.get('z_mm'), 0)} mm" if l3 else "-", str(bc.get("l3_source") or "-")],
        ["Sex", str(sex or "-"), str(bc.get("sex_source") or "-")],
        ["Height", fmt(bc.get("height_m"), 2, "m"), str(bc.get("height_source") or "-")],
        ["Weight", fmt(bc.get("weight_kg"), 1, "kg"), str(bc.get("weight_source") or "-")],
    ], "Waist, L3 and the patient figures used"))
    s.figures.append(Figure("body_composition_indices", figures.indices_png(w, sex, smi_cut, bfi_cut),
                            "Waist indices against the sex-specific cut-offs (dashed)"))
    if ct is not None and labels is not None:
        levels = [("waist top (lowest rib)", w.get("superior_z_mm")), ("L3 (estimate)", l3.get("z_mm")),
                  ("waist bottom (iliac crest)", w.get("inferior_z_mm"))]
        levels = [(n, float(z)) for n, z in levels if z is not None]
        from operators.common.labels import BODY_COMPOSITION

        png = figures.stack_png([figures.waist_slices_png(ct, labels, levels), figures.legend_png(BODY_COMPOSITION)])
        s.figures.append(Figure("waist_slices", png, "Axial slices at the waist bounds and L3 with the 7-class "
                                                     "body-composition map"))
    return s


def _dose_section(dose: Mapping | None) -> Section:
    s = Section("organ_dose", TITLES["organ_dose"], present=bool(dose and dose.get("organ_doses_mgy")))
    if not s.present:
        s.note = "organ dose " + NOT_RUN
        return s
    rows, outside = [], []
    doses = {}
    for name, d in dose["organ_doses_mgy"].items():
        val = d.get("dose") if isinstance(d, Mapping) else d
        if val is None:
            outside.append(_human(name))
            continue
        unc = d.get("uncertainty") if isinstance(d, Mapping) else None
        method = d.get("method", "-") if isinstance(d, Mapping) else "-"
        doses[name] = (float(val), None if unc is None else float(unc), method)
        rows.append([_human(name), fmt(val, 2), "-" if unc is None else f"+- {fmt(unc, 2)}", str(method)])
    s.tables.append(Table(["Organ", "Dose (mGy)", "Uncertainty (mGy)", "Method"], rows, "Organ doses"))
    s.tables.append(Table(["Quantity", "Value"], [
        ["CTDIvol", fmt(dose.get("ctdivol_mgy"), 2, "mGy")], ["SSDE (AAPM 204/220)", fmt(dose.get("ssde_mgy"), 2, "mGy")],
        ["Dose parameters from", str(dose.get("dose_source") or "-")]], "Scanner dose indices"))
    if outside:
        s.paragraphs.append(f"No dose ({NOT_IN_FOV} or not segmented): " + ", ".join(outside) + ".")
    if doses:
        s.figures.append(Figure("organ_doses", figures.dose_chart_png(doses, dose.get("ctdivol_mgy"),
                                                                       dose.get("ssde_mgy")),
                                "Organ doses (bars, 1 sigma where given) beside CTDIvol and SSDE (lines)"))
    return s


def _provenance_section(results: Mapping[str, Mapping | None], ct, timings: Mapping | None,
                        outputs: list[str] | None) -> Section:
    s = Section("provenance", TITLES["provenance"], present=True)
    models: dict[str, str] = {}
    apps = set()
    for r in results.values():
        p = (r or {}).get("provenance") or {}
        models.update(p.get("models") or {})
        if p.get("app"):
            apps.add(str(p["app"]))
    src = {}
    for r in results.values():
        src.update({k: v for k, v in ((r or {}).get("source") or {}).items() if k.endswith("instance_uid")})
    if ct is not None:
        src.setdefault("study_instance_uid", ct.meta.study_instance_uid)
        src.setdefault("series_instance_uid", ct.meta.series_instance_uid)
    rows = [["Software", f"{SOFTWARE_NAME} {code_version()}"], ["App(s)", ", ".join(sorted(apps)) or "-"],
            ["Models", ", ".join(f"{k} {v}" for k, v in sorted(models.items())) or "none"],
            ["Source study UID", str(src.get("study_instance_uid") or "-")],
            ["Source series UID", str(src.get("series_instance_uid") or "-")]]
    if ct is not None and ct.meta.sop_instance_uids:
        rows.append(["Source images", f"{len(ct.meta.sop_instance_uids)} CT instances"])
    s.tables.append(Table(["Item", "Value"], rows, "Software, models and source"))
    if timings:
        s.tables.append(Table(["Step", "Time (s)"], [[_human(k), fmt(v, 2)] for k, v in timings.items()],
                              "Processing time per step (this run)"))
    if outputs:
        s.paragraphs.append("Result files: " + ", ".join(outputs) + ".")
    s.paragraphs.append(f"{NOT_FOR_CLINICAL_USE}. Models were trained on synthetic CT; see each model card.")
    return s


def build_report(results: Mapping[str, Mapping | None], *, ct=None, organ_labels=None, body_composition_labels=None,
                 organ_label_table=None, timings: Mapping[str, float] | None = None, outputs: list[str] | None = None,
                 title: str = "CorpusCT whole-body CT report", now: _dt.datetime | None = None) -> ReportDocument:
    """The report of one study. ``results`` maps section inputs (series, range, organs, body_composition,
    organ_dose) to results dicts or None; images are optional (sections then show tables only)."""
    from operators.common import labels as lab

    table = organ_label_table or getattr(lab, "ALL_ORGANS", lab.ORGANS)
    sections = [
        _scan_section(results.get("series"), results.get("range"), ct),
        _organ_section(results.get("organs"), ct, organ_labels, table),
        _body_composition_section(results.get("body_composition"), ct, body_composition_labels),
        _dose_section(results.get("organ_dose")),
        _provenance_section(results, ct, timings, outputs),
    ]
    study = ""
    for r in [*results.values()]:
        study = study or ((r or {}).get("source") or {}).get("study_instance_uid", "")
    if not study and ct is not None:
        study = ct.meta.study_instance_uid
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return ReportDocument(title, f"Study {study}" if study else "Study UID unknown",
                          now.strftime("%Y-%m-%d %H:%M UTC"), sections)
