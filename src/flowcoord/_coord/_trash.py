"""Trash entries' names, alike on every board: ``<job id>-<10-digit sequence>`` (on
ZooKeeper the sequential node ``trash/<id>-<seq>`` itself), so an operator's tools take the
same ids from any board and a bad one is refused before it reaches a path."""

from __future__ import annotations

import re

__all__ = ["TRASH_ID_RULE", "is_trash_id", "trash_id_for"]

TRASH_ID_RULE = "a job id (24 hex digits), '-', and a sequence number of 10 digits"
_TRASH_ID = re.compile(r"[0-9a-f]{24}-[0-9]{10}")


def trash_id_for(job_id: str, seq: int) -> str:
    return f"{job_id}-{seq:010d}"


def is_trash_id(text: object) -> bool:
    return isinstance(text, str) and _TRASH_ID.fullmatch(text) is not None
