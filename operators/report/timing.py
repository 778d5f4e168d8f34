"""Wall time of each operator's ``compute()`` in an app graph, for the report's provenance and the benchmarks.

    timings = OperatorTimings()
    graynet = timed(GrayNetRangeOperator, timings)(app, models_dir=..., name="graynet_range")
    ...
    app.run(); timings.seconds   # {"graynet_range": 1.23, ...} in completion order

Holoscan binds ``compute`` when an operator is created, so operators must be constructed through ``timed``
(apps/base.py builds every operator through ``CorpusCTApp.make()``; the whole-body app overrides it).

``timed(cls, timings)`` returns a subclass of the operator class whose ``compute`` is the original one wrapped by
a clock (the operator's own code is untouched). Times add up when an operator computes more than once.
"""

from __future__ import annotations

import threading
import time


class OperatorTimings:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + float(seconds), 3)

    def total(self) -> float:
        return round(sum(self.seconds.values()), 3)

    def to_json(self) -> dict[str, float]:
        return dict(self.seconds)


def timed(cls: type, timings: OperatorTimings) -> type:
    """A subclass of operator class ``cls`` that records each ``compute()``'s wall time under the operator's
    name in ``timings``."""
    def compute(self, op_input, op_output, context):
        t0 = time.perf_counter()
        try:
            return cls.compute(self, op_input, op_output, context)
        finally:
            timings.add(self.name, time.perf_counter() - t0)

    return type(cls.__name__, (cls,), {"compute": compute, "__doc__": cls.__doc__, "__module__": cls.__module__,
                                       "_corpusct_timed": True})
