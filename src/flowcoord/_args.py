"""Argument types shared by the command and the worker's own options."""

from __future__ import annotations

import argparse

__all__ = ["int_in"]


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
