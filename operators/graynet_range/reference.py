"""The small table of ICRP-110 landmark z positions the range selector needs at run time
(``icrp110_landmarks.json`` beside this module; numbers derived from ICRP Publication 110, Ann. ICRP 39(2),
2009, by ``models/phantoms/icrp110.landmarks_mm``). The phantom arrays stay in ../shared/data.

    python -m operators.graynet_range.reference --regenerate   # rebuild the table from ../shared/data
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("icrp110_landmarks.json")


@functools.lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(TABLE.read_text())


def reference_landmarks(phantom: str) -> dict[str, float]:
    """Landmark z (mm, 0 = soles) of the ICRP-110 AM or AF phantom."""
    return dict(table()["phantoms"][phantom.upper()]["landmarks_mm"])


def regenerate() -> Path:
    from models.phantoms import icrp110

    t = dict(table())
    for ph in icrp110.PHANTOMS:
        ids, aff = icrp110.load_organ_ids(ph)
        t["phantoms"][ph].update(landmarks_mm=icrp110.landmarks_mm(ph), n_slices=int(ids.shape[0]),
                                 landmarks_raw_mm={k: round(v, 2) for k, v in icrp110.landmarks_raw_mm(ph).items()})
    TABLE.write_text(json.dumps(t, indent=1) + "\n")
    table.cache_clear()
    return TABLE


if __name__ == "__main__" and "--regenerate" in sys.argv:
    print(regenerate())
