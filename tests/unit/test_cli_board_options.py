"""The job-board options are one definition, shared by ``worker``, ``flows resume|cancel``
and ``serve``; a take-over consults a board only with ``--zk``."""

from __future__ import annotations

import argparse

import pytest

from flowcoord._cli._main import build_parser
from flowcoord._cli._worker import board_path, worker_options, worker_parser
from flowcoord._coord._workers import DEFAULT_BOARD_PATH

_BOARD_OPTS = {"--zk", "--namespace", "--board", "--zk-auth"}


def _subparser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


@pytest.mark.parametrize("path", [("flows", "resume"), ("flows", "cancel"), ("serve",)])
def test_the_faces_take_the_workers_board_options(path: tuple[str, ...]) -> None:
    ours = _options(_subparser(*path))
    theirs = _options(worker_parser())
    assert set(ours) >= _BOARD_OPTS
    for opt in _BOARD_OPTS - {"--zk"}:
        assert (ours[opt].default, ours[opt].help) == (theirs[opt].default, theirs[opt].help)
    assert not ours["--zk"].required  # optional here, required by the worker
    assert theirs["--zk"].required
    assert "journal fence" in (ours["--zk"].help or "")


def test_resume_without_zk_consults_no_board_and_force_is_opt_in() -> None:
    base = ["flows", "resume", "f-1", "--journal", "memory:", "--flow", "m:f"]
    args = build_parser().parse_args(base)
    assert (args.zk, args.force, board_path(args)) == (None, False, DEFAULT_BOARD_PATH)
    args = build_parser().parse_args([*base, "--zk", "zk1:2181", "--board", "/b2", "--force"])
    assert (args.zk, args.force, board_path(args), args.namespace) == (
        "zk1:2181",
        True,
        "/b2",
        "/flowcoord",
    )


def test_the_worker_still_defaults_to_the_default_board() -> None:
    argv = ["--zk", "h:1", "--journal", "memory:", "--registry", "m:r"]
    assert worker_options(argv).board == DEFAULT_BOARD_PATH
    assert worker_options([*argv, "--board", "/other"]).board == "/other"
    assert DEFAULT_BOARD_PATH in (_options(_subparser("serve"))["--board"].help or "")
