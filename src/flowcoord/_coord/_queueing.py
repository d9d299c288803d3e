"""The queue rules every job board shares (no I/O, no backend types): names, priorities,
limits, delays, idempotency keys and the job ids derived from them.

A job's id is derived from its idempotency key (:func:`job_id_for`), so every board, and
every client of one board, maps one key to one id; a board keeps a key for ``key_retention``
seconds after its job ended, and a post under it within that window returns the ended job.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._codec import Codec
from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_KEY_RETENTION",
    "DEFAULT_QUEUE",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "QUEUE_NAME_RULE",
    "check_key",
    "check_limit",
    "check_priority",
    "check_queue_name",
    "due_time",
    "inputs_digest",
    "job_id_for",
]

DEFAULT_QUEUE = "default"
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
#: How long a board remembers the key of an ended job (a day, as Inngest's default).
DEFAULT_KEY_RETENTION = 86400.0
QUEUE_NAME_RULE = "1-64 letters, digits, '_' and '-' (starting with a letter or digit)"
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MAX_KEY = 1024


def check_queue_name(name: object) -> str:
    if not isinstance(name, str) or _QUEUE_NAME.fullmatch(name) is None:
        raise ConfigurationError(
            f"invalid queue name {name!r}", hint=f"a queue name is {QUEUE_NAME_RULE}"
        )
    return name


def check_priority(priority: object) -> int:
    """``priority`` if it is an int from MIN_PRIORITY to MAX_PRIORITY (higher runs first)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigurationError(f"a job's priority must be an int, got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ConfigurationError(
            f"priority {priority} is out of range",
            hint=f"use {MIN_PRIORITY} to {MAX_PRIORITY} (higher runs first; few distinct values)",
        )
    return priority


def check_limit(value: object, what: str) -> int:
    """A concurrency limit: an int of at least 1 (zero or below would run nothing, ever)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{what} must be an int of at least 1, got {value!r}",
            hint="leave the limit out for none; to stop a queue, stop the workers serving it",
        )
    return value


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise ConfigurationError(
            f"invalid idempotency key {key!r:.80}", hint=f"a key is a string of 1-{_MAX_KEY} chars"
        )
    return key


def due_time(not_before: float | datetime | None) -> float:
    """``not_before`` as epoch seconds (0.0: none). A naive datetime is local time."""
    if not_before is None:
        return 0.0
    if isinstance(not_before, datetime):
        return not_before.timestamp()
    if isinstance(not_before, bool) or not isinstance(not_before, int | float):
        raise ConfigurationError(
            f"not_before must be epoch seconds or a datetime, got {not_before!r}"
        )
    if not math.isfinite(not_before) or not_before < 0:
        raise ConfigurationError(f"not_before must be a finite time, got {not_before!r}")
    return float(not_before)


def job_id_for(key: str) -> str:
    """The id of the job posted under ``key``: 24 hex digits of its SHA-256 (96 bits, so
    two keys of one board collide with odds below 1e-15 even at ten million keys)."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def inputs_digest(flow: str, inputs: Mapping[str, Any], codec: Codec) -> str:
    """A digest of what a job runs, to tell a repeated post from a conflicting one: the same
    flow and the same inputs as JSON (keys in any order) give the same digest."""
    canonical = json.loads(codec.encode(dict(inputs), what=f"inputs of flow {flow!r}"))
    text = json.dumps([flow, canonical], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
