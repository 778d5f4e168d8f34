"""Selection rules in the SDK's JSON format (DICOMSeriesSelectorOperator), loaded from a file or a string.

Format: ``{"selections": [{"name": ..., "conditions": {Keyword: matcher, ...}}, ...]}``; a series matches a
selection when all its conditions match, and the rules when any selection matches. Matchers (SDK 4.0):
numbers exact, ``[min, max]`` inclusive or ``[v, ">="]``; strings regex (case-insensitive); multi-valued tags a
list of substrings with ``"!term"`` to exclude; ``ImageOrientationPatient: "Axial"``. Falsy condition values
are ignored by the SDK, so they are refused here.

Default rules per application live in ``rules/*.json`` beside this module (``default_rules_path(name)``).
"""

from __future__ import annotations

import json
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent / "rules"
DEFAULT_RULES = "ct_default"


def default_rules_path(name: str = DEFAULT_RULES) -> Path:
    p = RULES_DIR / f"{name}.json"
    if not p.is_file():
        known = sorted(x.stem for x in RULES_DIR.glob("*.json"))
        raise ValueError(f"No selection rules named {name!r} (known: {known})")
    return p


def load_rules(rules=None) -> dict:
    """Rules as a dict from None (default), a rules name, a path, a JSON string, or a dict; validated."""
    if rules is None or (isinstance(rules, str) and not rules.strip()):
        rules = default_rules_path()
    if isinstance(rules, dict):
        data = rules
    elif isinstance(rules, Path) or (isinstance(rules, str) and not rules.lstrip().startswith("{")):
        p = Path(rules)
        if not p.is_file() and isinstance(rules, str) and "/" not in rules and not rules.endswith(".json"):
            p = default_rules_path(rules)
        data = json.loads(Path(p).read_text())
    else:
        data = json.loads(rules)
    validate_rules(data)
    return data


def validate_rules(data: dict) -> None:
    sels = data.get("selections") if isinstance(data, dict) else None
    if not isinstance(sels, list) or not sels:
        raise ValueError('Selection rules need a non-empty "selections" list.')
    for i, sel in enumerate(sels):
        conds = sel.get("conditions") if isinstance(sel, dict) else None
        if not isinstance(conds, dict) or not conds:
            raise ValueError(f"Selection {i} ({sel.get('name', '?') if isinstance(sel, dict) else sel!r}) has no "
                             "conditions.")
        for k, v in conds.items():
            if not v:  # the SDK skips falsy matchers (0, "", [], false): they would match everything
                raise ValueError(f"Selection {sel.get('name', i)!r}: condition {k} = {v!r} is falsy (the SDK "
                                 "would silently ignore it).")


def rule_names(data: dict) -> list[str]:
    return [str(s.get("name", "")).strip() for s in data["selections"]]
