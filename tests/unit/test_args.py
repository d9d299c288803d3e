"""Argument types of the command and the worker."""

from __future__ import annotations

import argparse
from datetime import datetime

import pytest

from flowcoord._args import int_in, positive_float, since


def test_int_in_takes_ints_in_bounds_and_names_what_it_wanted() -> None:
    assert int_in("5", 1, 10, "a number from 1 to 10") == 5
    assert int_in("123456", 1, None, "a positive integer") == 123456
    for bad in ("0", "11", "x", "2.5", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a number from 1 to 10"):
            int_in(bad, 1, 10, "a number from 1 to 10")


def test_positive_float_takes_finite_numbers_above_zero() -> None:
    assert positive_float("0.5") == 0.5
    for bad in ("0", "-1", "x", "inf", "nan", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a positive number"):
            positive_float(bad)


def test_since_takes_relative_times_as_a_sliding_bound() -> None:
    for text, seconds in (("30s", 30), ("10m", 600), ("2h", 7200), ("3d", 259200), ("1w", 604800)):
        assert since(text).cutoff(now=1_000_000.0) == 1_000_000.0 - seconds
    assert since("1.5h").cutoff(now=10_000.0) == 10_000.0 - 5400
    bound = since("10m")
    assert bound.cutoff(now=2000.0) - bound.cutoff(now=1000.0) == 1000.0  # re-read each time


def test_since_takes_iso_times_local_unless_they_name_a_zone() -> None:
    assert since("2024-05-01T12:00:00Z").cutoff() == 1714564800.0
    assert since("2024-05-01T14:00+02:00").cutoff() == 1714564800.0
    naive = datetime(2024, 5, 1, 12, 0).timestamp()  # local time, as the command's user has it
    assert since("2024-05-01T12:00").cutoff() == naive
    assert since("2024-05-01").cutoff() == datetime(2024, 5, 1).timestamp()
    for bad in ("yesterday", "10 minutes", "5", "2024-13-01", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a time: write"):
            since(bad)
