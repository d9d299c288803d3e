"""Argument types of the command and the worker."""

from __future__ import annotations

import argparse

import pytest

from flowcoord._args import int_in


def test_int_in_takes_ints_in_bounds_and_names_what_it_wanted() -> None:
    assert int_in("5", 1, 10, "a number from 1 to 10") == 5
    assert int_in("123456", 1, None, "a positive integer") == 123456
    for bad in ("0", "11", "x", "2.5", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a number from 1 to 10"):
            int_in(bad, 1, 10, "a number from 1 to 10")
