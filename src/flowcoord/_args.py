"""Argument types shared by the command and the worker's own options."""

from __future__ import annotations

import argparse
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Since", "int_in", "positive_float", "since"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def int_in(text: str, low: int, high: int | None, what: str) -> int:
    """``text`` as an int from ``low`` to ``high`` (no bound when None), or an argparse
    error saying it is not ``what``."""
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_float(text: str) -> float:
    """``text`` as a finite number above 0, or an argparse error."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


@dataclass(frozen=True, slots=True)
class Since:
    """A lower bound in time: ``ago`` seconds before now (re-read each time it is asked,
    so a watched listing keeps a sliding window), or a fixed ``at`` (epoch seconds)."""

    text: str
    ago: float | None = None
    at: float | None = None

    def cutoff(self, now: float | None = None) -> float:
        """The bound, in epoch seconds."""
        if self.at is not None:
            return self.at
        assert self.ago is not None
        return (time.time() if now is None else now) - self.ago


def since(text: str) -> Since:
    """``10m``, ``2h``, ``3d``, ``1w``, ``30s`` ago, or an ISO 8601 time (``2024-05-01``,
    ``2024-05-01T12:00``, ``...+02:00``, ``...Z``; local time when it names no zone)."""
    m = _RELATIVE.match(text)
    if m:
        return Since(text, ago=float(m.group(1)) * _UNITS[m.group(2).lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write e.g. 10m, 2h, 3d (ago) or 2024-05-01T12:00"
            " (ISO 8601, local time unless it names a zone)"
        ) from None
    return Since(text, at=when.timestamp())  # a naive time is local: timestamp() says so
