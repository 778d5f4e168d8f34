"""Reconstruction kernel classes per vendor (pure).

Classes: "soft" (soft-tissue / standard body kernels: what the anatomy models expect), "medium"
(detail / intermediate), "sharp" (lung, bone, edge, high-resolution), "unknown".

Vendor naming (ConvolutionKernel (0018,1210); may be multi-valued, e.g. Siemens ['Br40d', '3']):
- Siemens: a letter code and a two-digit sharpness number: B30f, B40f, B45f (body), I26f/I31f/I40f (iterative),
  H30s (head), Br36d/Br40d/Bv40d/Qr40d (Force/Flash). <= 45 soft, 46-59 medium, >= 60 sharp (B60f, B70f,
  B75f, B80f, Br60+, Bl57/Bl64 lung); "Bl"/"Hl" (lung) codes are sharp at any number.
- GE: SOFT, STANDARD (STND) soft; DETAIL, CHEST medium; LUNG, BONE, BONEPLUS, EDGE, ULTRA sharp.
- Philips: A, B, C, UA-UC soft; D medium; E, L, Y* (YA-YF), EB/EC sharp.
- Toshiba/Canon: FCxx: FC01-FC19 soft (body/abdomen), FC20-FC49 medium (head, bone-ish), FC50+ sharp
  (FC50-FC57 lung, FC80-FC86 high-resolution lung/bone); AiCE/FIRST names "Body", "Lung", "Bone".
Any vendor: names containing LUNG, BONE, SHARP, EDGE, HR are sharp; SOFT, STANDARD, STD, BODY, SMOOTH, ABD
soft.
"""

from __future__ import annotations

import re

KERNEL_SCORE = {"soft": 1.0, "medium": 0.6, "unknown": 0.5, "sharp": 0.0}

_SIEMENS = re.compile(r"^([A-Z])([a-z]?)(\d{2})([a-z]?)\d*$")
_CANON = re.compile(r"^FC(\d{2})$", re.IGNORECASE)
_GE = {"SOFT": "soft", "STANDARD": "soft", "STND": "soft", "SMOOTH": "soft", "DETAIL": "medium",
       "CHEST": "medium", "LUNG": "sharp", "BONE": "sharp", "BONEPLUS": "sharp", "BONE PLUS": "sharp",
       "EDGE": "sharp", "ULTRA": "sharp", "HD LUNG": "sharp", "HD STANDARD": "soft", "HD BONE": "sharp"}
_PHILIPS = {"A": "soft", "B": "soft", "C": "soft", "UA": "soft", "UB": "soft", "UC": "soft", "D": "medium",
            "E": "sharp", "L": "sharp", "EB": "sharp", "EC": "sharp"}
_SHARP_WORDS = ("LUNG", "BONE", "SHARP", "EDGE", "ULTRA", "HR", "HIGH RES")
_SOFT_WORDS = ("SOFT", "STANDARD", "STND", "STD", "BODY", "SMOOTH", "ABD", "MEDIASTIN")


def _first_kernel(kernel) -> str:
    if kernel is None:
        return ""
    if isinstance(kernel, (list, tuple)) or type(kernel).__name__ == "MultiValue":
        kernel = kernel[0] if len(kernel) else ""
    s = str(kernel).strip()
    return s.split("\\")[0].strip()


def classify_kernel(kernel, manufacturer: str = "") -> tuple[str, str]:
    """(class, explanation) for a ConvolutionKernel value and Manufacturer."""
    k = _first_kernel(kernel)
    if not k:
        return "unknown", "no ConvolutionKernel"
    ku = k.upper()
    man = (manufacturer or "").upper()

    m = _CANON.match(k)
    if m:
        num = int(m.group(1))
        cls = "soft" if num < 20 else "medium" if num < 50 else "sharp"
        return cls, f"Toshiba/Canon {k}: {'FC01-FC19 soft-tissue' if cls == 'soft' else 'FC20-FC49 intermediate' if cls == 'medium' else 'FC50+ lung/bone'}"

    m = _SIEMENS.match(k)
    if m and not ("PHILIPS" in man or "GE" in man.split()):
        sub, num = m.group(2), int(m.group(3))
        if sub == "l":  # Bl57, Hl..: lung kernels
            return "sharp", f"Siemens {k}: lung kernel"
        cls = "soft" if num <= 45 else "medium" if num < 60 else "sharp"
        return cls, f"Siemens {k}: sharpness {num} ({'<= 45 soft' if cls == 'soft' else '46-59 intermediate' if cls == 'medium' else '>= 60 sharp'})"

    if ku in _GE:
        return _GE[ku], f"GE {k}"
    if ku in _PHILIPS or ("PHILIPS" in man and re.match(r"^[A-Z]{1,2}$", ku)):
        if ku in _PHILIPS:
            return _PHILIPS[ku], f"Philips {k}"
        if ku.startswith("Y"):
            return "sharp", f"Philips {k}: Y kernels are sharp"
    if re.match(r"^Y[A-F]$", ku):
        return "sharp", f"Philips {k}: Y kernels are sharp"

    for w in _SHARP_WORDS:
        if re.search(rf"\b{w}", ku):
            return "sharp", f"{k}: name says {w.lower()}"
    for w in _SOFT_WORDS:
        if re.search(rf"\b{w}", ku):
            return "soft", f"{k}: name says {w.lower()}"
    return "unknown", f"{k}: kernel not recognised"
