"""Progress of long steps (Monte Carlo batches, training epochs, cohort generation): "step i/n, elapsed, ETA"
through ``logging``, at most once every ``every_s`` seconds (plus the first and the last step), so a long run
shows that it is alive and when it will end without flooding the log. No third-party dependency.

    with Progress(n_batches, "Monte Carlo batches", log=log) as p:      # a context manager ...
        for b in range(n_batches):
            run_batch(b)
            p.update()
    for case in progress(cases, "cohort cases", log=log):              # ... or an iterator wrapper
        make(case)
    p = Progress(None, "training steps", budget_s=600)                 # unknown count, time budget: ETA from it

ETA = remaining steps at the mean rate so far; with a time budget, the smaller of that and the budget left.
The clock is injectable (``clock=``) so the timing logic is testable without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_log = logging.getLogger("corpusct.progress")


def format_duration(seconds: float | None) -> str:
    """``"45 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``; ``"?"`` for an unknown duration."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Progress:
    """Counts done steps of ``total`` (None: unknown) and logs "label: i/n (p %), elapsed X, ETA Y"."""

    def __init__(self, total: int | None, label: str, *, log: logging.Logger | None = None, every_s: float = 10.0,
                 budget_s: float | None = None, unit: str = "", level: int = logging.INFO,
                 clock: Callable[[], float] = time.monotonic):
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None, got {total}")
        self.total, self.label, self.every_s, self.budget_s = total, label, float(every_s), budget_s
        self.unit, self.level, self.clock = (f" {unit}" if unit else ""), level, clock
        self.log = log or _log
        self.done = 0
        self.t0 = clock()
        self._last_log: float | None = None
        self.messages: list[str] = []  # what was logged (tests, summaries)

    # timing --------------------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.t0

    def eta_s(self) -> float | None:
        """Seconds left: remaining steps at the mean rate so far, capped by the time budget left."""
        el = self.elapsed_s
        by_rate = None
        if self.total is not None and self.done > 0:
            by_rate = max(self.total - self.done, 0) * el / self.done
        by_budget = max(self.budget_s - el, 0.0) if self.budget_s is not None else None
        known = [v for v in (by_rate, by_budget) if v is not None]
        return min(known) if known else None

    # counting ------------------------------------------------------------------------------------------
    def update(self, n: int = 1, note: str = "") -> None:
        """``n`` more steps done; logs when ``every_s`` has passed since the last line, or on the last step."""
        self.set(self.done + n, note)

    def set(self, done: int, note: str = "") -> None:
        self.done = int(done)
        now = self.clock()
        finished = self.total is not None and self.done >= self.total
        if self._last_log is None or finished or now - self._last_log >= self.every_s:
            self._emit(note)

    def message(self, note: str = "") -> str:
        if self.total:
            count = f"{self.done}/{self.total}{self.unit} ({100.0 * self.done / self.total:.0f} %)"
        else:
            count = f"{self.done}{self.unit}"
        text = f"{self.label}: {count}, elapsed {format_duration(self.elapsed_s)}, ETA {format_duration(self.eta_s())}"
        return f"{text}; {note}" if note else text

    def _emit(self, note: str = "") -> None:
        msg = self.message(note)
        self._last_log = self.clock()
        self.messages.append(msg)
        self.log.log(self.level, "%s", msg)

    # context manager -------------------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is GeneratorExit:  # the consumer of progress() stopped early (break)
            msg = f"{self.label}: ended early after {self.done}{self.unit} in {format_duration(self.elapsed_s)}"
        elif exc_type is not None:
            msg = f"{self.label}: stopped by {exc_type.__name__} after {self.done}{self.unit} " \
                  f"in {format_duration(self.elapsed_s)}"
        else:
            msg = f"{self.label}: {self.done}{self.unit} done in {format_duration(self.elapsed_s)}"
        self.messages.append(msg)
        self.log.log(self.level, "%s", msg)


def progress(items: Iterable[T], label: str, *, total: int | None = None, **kwargs) -> Iterator[T]:
    """Yield ``items`` while logging progress (``total`` defaults to ``len(items)`` where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, label, **kwargs) as p:
        for item in items:
            yield item
            p.update()
