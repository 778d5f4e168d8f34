"""Render a ``ReportDocument`` as self-contained HTML (images inline as base64 PNG) and as an A4 PDF
(matplotlib PdfPages; no network, no extra dependency), and the PDF's pages as PNGs for review.

Every PDF page carries the title, the study UID line, "Research use only - not for clinical use" and its
page number; the HTML carries the disclaimer at the top and the bottom. Text is embedded as TrueType
(pdf.fonttype 42) so the PDF's text can be searched and extracted.

    html = render_html(doc)
    pdf = render_pdf(doc)                     # bytes
    pngs = render_page_pngs(doc, out_dir)     # [Path], one per PDF page
"""

from __future__ import annotations

import base64
import html as _html
import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .document import ReportDocument, Section, Table

# --- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px;margin-bottom:2px} h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
.disclaimer{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;font-weight:bold}
.study{color:#555;font-size:12px} .note{color:#666;font-style:italic}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0} caption{text-align:left;font-weight:bold;padding:4px 0}
figure{margin:10px 0} figure img{max-width:100%} figcaption{font-size:12px;color:#555}
ul.status li{margin:2px 0}
"""


def _e(text) -> str:
    return _html.escape(str(text))


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in t.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    cap = f"<caption>{_e(t.title)}</caption>" if t.title else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_section(s: Section) -> str:
    if not s.present:
        return f'<section id="{s.key}"><h2>{_e(s.title)}</h2><p class="note">{_e(s.note)}</p></section>'
    parts = [f'<section id="{s.key}"><h2>{_e(s.title)}</h2>']
    if s.note:
        parts.append(f'<p class="note">{_e(s.note)}</p>')
    parts += [_html_table(t) for t in s.tables]
    parts += [f"<p>{_e(p)}</p>" for p in s.paragraphs]
    for f in s.figures:
        data = base64.b64encode(f.png).decode("ascii")
        parts.append(f'<figure id="fig-{f.name}"><img alt="{_e(f.caption)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{_e(f.caption)}</figcaption></figure>")
    parts.append("</section>")
    return "".join(parts)


def render_html(doc: ReportDocument) -> str:
    status = "".join(f"<li><b>{_e(s.title)}</b>: {_e('included' if s.present else s.note)}</li>"
                     for s in doc.sections)
    body = "".join(_html_section(s) for s in doc.sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(doc.title)}</title>'
            f"<style>{_CSS}</style></head><body>"
            f'<p class="disclaimer">{_e(doc.disclaimer)}</p><h1>{_e(doc.title)}</h1>'
            f'<p class="study">{_e(doc.study_line)} &middot; generated {_e(doc.generated_utc)}</p>'
            f'<ul class="status">{status}</ul>{body}'
            f'<p class="disclaimer">{_e(doc.disclaimer)}</p></body></html>\n')


# --- PDF: a simple flow layout on A4 pages ------------------------------------------------------------------

PAGE_W, PAGE_H = 8.27, 11.69  # inches
MARGIN, TOP, BOTTOM = 0.6, 1.05, 0.7  # inches: side margin, header band, footer band
TEXT_W = PAGE_W - 2 * MARGIN
MONO_PT, TEXT_PT = 7.4, 8.6
MONO_CHAR_IN = 0.6 * MONO_PT / 72.0  # DejaVu Sans Mono advance = 0.6 em


def _line_h(pt: float) -> float:
    return pt * 1.45 / 72.0


@dataclass
class _Item:
    kind: str  # heading | text | note | table | image
    height: float  # inches
    payload: object


def _wrap(text: str, pt: float, width_in: float = TEXT_W) -> list[str]:
    chars = max(20, int(width_in / (0.55 * pt / 72.0)))
    return textwrap.wrap(str(text), chars) or [""]


def _table_lines(t: Table) -> list[str]:
    """Monospace table: columns sized to their content within the text width, cells wrapped."""
    max_chars = int(TEXT_W / MONO_CHAR_IN) - 1
    ncol = len(t.columns)
    want = [max([len(str(c))] + [len(str(r[i])) for r in t.rows]) for i, c in enumerate(t.columns)]
    gap = 2
    avail = max_chars - gap * (ncol - 1)
    widths = list(want)
    while sum(widths) > avail:  # shrink the widest column until it fits
        i = int(np.argmax(widths))
        widths[i] -= 1
    lines = []

    def row_lines(cells):
        wrapped = [textwrap.wrap(str(c), w) or [""] for c, w in zip(cells, widths, strict=True)]
        for k in range(max(len(w) for w in wrapped)):
            lines.append((" " * gap).join((w[k] if k < len(w) else "").ljust(widths[i]) for i, w in enumerate(wrapped)))

    row_lines(t.columns)
    lines.append("-" * (sum(widths) + gap * (ncol - 1)))
    for r in t.rows:
        row_lines(r)
    return lines


def _image_size(png: bytes, max_w: float = TEXT_W, max_h: float = 5.2) -> tuple[np.ndarray, float, float]:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")
    h_px, w_px = img.shape[:2]
    w = min(max_w, w_px / 110.0)  # figures are drawn at 110 dpi: keep their natural size where it fits
    h = w * h_px / w_px
    if h > max_h:
        h, w = max_h, max_h * w_px / h_px
    return img, w, h


def _items(doc: ReportDocument) -> list[_Item]:
    items: list[_Item] = []
    lh_text, lh_mono = _line_h(TEXT_PT), _line_h(MONO_PT)
    summary = [f"{s.title}: {'included' if s.present else s.note}" for s in doc.sections]
    items.append(_Item("text", lh_text * len(summary) + 0.1, summary))
    for s in doc.sections:
        if not s.present:
            lines = _wrap(f"{s.title}: {s.note}", TEXT_PT)
            items.append(_Item("note", lh_text * len(lines) + 0.18, lines))
            continue
        items.append(_Item("heading", 0.42, s.title))
        if s.note:
            lines = _wrap(s.note, TEXT_PT)
            items.append(_Item("note", lh_text * len(lines) + 0.05, lines))
        for t in s.tables:
            lines = ([t.title] if t.title else []) + _table_lines(t)
            items.append(_Item("table", lh_mono * len(lines) + 0.14, (bool(t.title), lines)))
        for p in s.paragraphs:
            lines = _wrap(p, TEXT_PT)
            items.append(_Item("text", lh_text * len(lines) + 0.06, lines))
        for f in s.figures:
            img, w, h = _image_size(f.png)
            cap = _wrap(f.caption, TEXT_PT - 1)
            items.append(_Item("image", h + _line_h(TEXT_PT - 1) * len(cap) + 0.15, (img, w, h, cap)))
    return items


def _paginate(items: list[_Item]) -> list[list[_Item]]:
    usable = PAGE_H - TOP - BOTTOM
    pages: list[list[_Item]] = [[]]
    used = 0.0
    for i, it in enumerate(items):
        need = it.height
        if it.kind == "heading" and i + 1 < len(items):
            need += min(items[i + 1].height, usable / 2)  # keep a heading with what follows it
        if pages[-1] and used + need > usable:
            room = usable - used
            if it.kind == "image" and room >= 0.6 * it.height:  # shrink a figure a little rather than break
                img, w, h, cap = it.payload
                scale = (room - (it.height - h)) / h
                it = _Item("image", room, (img, w * scale, h * scale, cap))
            else:
                pages.append([])
                used = 0.0
        pages[-1].append(it)
        used += it.height
    return pages


def _draw_page(doc: ReportDocument, items: list[_Item], page: int, n_pages: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(PAGE_W, PAGE_H))
    fx, fy = 1.0 / PAGE_W, 1.0 / PAGE_H  # inches -> figure fraction

    def y_frac(y_in):
        return 1.0 - y_in * fy

    fig.text(MARGIN * fx, y_frac(0.42), doc.title, fontsize=13, weight="bold", va="baseline")
    fig.text(MARGIN * fx, y_frac(0.64), f"{doc.study_line}   generated {doc.generated_utc}", fontsize=7.5,
             color="0.35", va="baseline")
    fig.text(1 - MARGIN * fx, y_frac(0.42), doc.disclaimer.upper(), fontsize=8, weight="bold", color="#b03a2e",
             ha="right", va="baseline")
    fig.add_artist(plt.Line2D([MARGIN * fx, 1 - MARGIN * fx], [y_frac(0.78)] * 2, color="0.6", lw=0.6))
    fig.text(MARGIN * fx, BOTTOM * 0.45 * fy, f"CorpusCT - {doc.disclaimer}", fontsize=7.5, color="#b03a2e")
    fig.text(1 - MARGIN * fx, BOTTOM * 0.45 * fy, f"page {page} of {n_pages}", fontsize=7.5, color="0.35", ha="right")
    y = TOP
    lh_text, lh_mono = _line_h(TEXT_PT), _line_h(MONO_PT)
    for it in items:
        if it.kind == "heading":
            fig.text(MARGIN * fx, y_frac(y + 0.28), it.payload, fontsize=11.5, weight="bold", va="baseline")
            fig.add_artist(plt.Line2D([MARGIN * fx, 1 - MARGIN * fx], [y_frac(y + 0.34)] * 2, color="0.8", lw=0.5))
        elif it.kind in ("text", "note"):
            style = dict(fontsize=TEXT_PT, va="top")
            if it.kind == "note":
                style.update(style="italic", color="0.35")
            for k, line in enumerate(it.payload):
                fig.text(MARGIN * fx, y_frac(y + 0.03 + k * lh_text), line, **style)
        elif it.kind == "table":
            has_title, lines = it.payload
            for k, line in enumerate(lines):
                bold = has_title and k == 0
                fig.text(MARGIN * fx, y_frac(y + 0.03 + k * lh_mono), line, fontsize=MONO_PT if not bold else 8.2,
                         family="sans-serif" if bold else "monospace", weight="bold" if bold else "normal", va="top")
        elif it.kind == "image":
            img, w, h, cap = it.payload
            x0 = MARGIN + (TEXT_W - w) / 2
            ax = fig.add_axes([x0 * fx, y_frac(y + 0.05 + h), w * fx, h * fy])
            ax.imshow(img, interpolation="lanczos")
            ax.axis("off")
            for k, line in enumerate(cap):
                fig.text(MARGIN * fx, y_frac(y + 0.1 + h + k * _line_h(TEXT_PT - 1)), line, fontsize=TEXT_PT - 1,
                         color="0.3", va="top")
        y += it.height
    return fig


def _figures(doc: ReportDocument):
    pages = _paginate(_items(doc))
    for i, items in enumerate(pages):
        yield _draw_page(doc, items, i + 1, len(pages))


def render_pdf(doc: ReportDocument) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import logging

    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # font subsetting logs a line per table at INFO
    buf = io.BytesIO()
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        with PdfPages(buf, metadata={"Title": doc.title, "Creator": "CorpusCT", "Subject": doc.disclaimer}) as pdf:
            for fig in _figures(doc):
                pdf.savefig(fig)
                plt.close(fig)
    return buf.getvalue()


def render_page_pngs(doc: ReportDocument, out_dir: str | Path, dpi: int = 80, stem: str = "report_page") -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fig in enumerate(_figures(doc)):
        p = out_dir / f"{stem}_{i + 1}.png"
        fig.savefig(p, dpi=dpi)
        plt.close(fig)
        paths.append(p)
    return paths
