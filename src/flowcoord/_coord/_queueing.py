"""The queue rules every job board shares (no I/O, no backend types): names, priorities,
limits, rate limits, partition keys, headers, delays, idempotency keys and the job ids
derived from them.

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
    "MAX_HEADERS",
    "MAX_HEADERS_BYTES",
    "MAX_PARTITION",
    "MAX_PRIORITY",
    "MAX_RATE_COUNT",
    "MIN_PRIORITY",
    "QUEUE_NAME_RULE",
    "check_headers",
    "check_key",
    "check_limit",
    "check_partition",
    "check_priority",
    "check_queue_name",
    "check_rate_limit",
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
#: A partition key is a string of 1 to MAX_PARTITION characters (e.g. a tenant id).
MAX_PARTITION = 256
#: A job's headers: at most MAX_HEADERS entries, MAX_HEADERS_BYTES as JSON (UTF-8).
MAX_HEADERS, MAX_HEADERS_BYTES = 16, 4096
#: A rate limit's count: each start a claim may take is a node on ZooKeeper.
MAX_RATE_COUNT = 1000


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


def check_partition(partition: object) -> str | None:
    """A job's partition key: None (no partition), or a string of 1-MAX_PARTITION chars."""
    if partition is None:
        return None
    if not isinstance(partition, str) or not 1 <= len(partition) <= MAX_PARTITION:
        raise ConfigurationError(
            f"invalid partition key {partition!r:.80}",
            hint=f"a partition key is a string of 1-{MAX_PARTITION} characters (a tenant or "
            "account id, say), or None for none",
        )
    return partition


def check_headers(headers: object) -> dict[str, str]:
    """A job's headers (e.g. trace context): a mapping of non-empty strings to strings, at
    most MAX_HEADERS entries and MAX_HEADERS_BYTES as JSON; None is none."""
    if headers is None:
        return {}
    hint = (
        f"headers map non-empty strings to strings, at most {MAX_HEADERS} of them and "
        f"{MAX_HEADERS_BYTES} bytes as JSON: small metadata such as trace context, not inputs"
    )
    if not isinstance(headers, Mapping):
        raise ConfigurationError(f"headers must be a mapping, not {headers!r:.80}", hint=hint)
    out = dict(headers)
    for name, value in out.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ConfigurationError(f"invalid header {name!r:.40}: {value!r:.40}", hint=hint)
    if len(out) > MAX_HEADERS:
        raise ConfigurationError(f"a job has {len(out)} headers", hint=hint)
    size = len(json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_HEADERS_BYTES:
        raise ConfigurationError(f"a job's headers take {size} bytes as JSON", hint=hint)
    return out


def check_rate_limit(value: object, what: str) -> tuple[int, float] | None:
    """A rate limit ``(count, period)``: at most ``count`` starts (1 to MAX_RATE_COUNT) in
    any ``period`` seconds (finite, above 0); None is none."""
    if value is None:
        return None
    hint = (
        "pass (count, period): at most count starts in any period seconds, e.g. (10, 1.0); "
        f"count is 1-{MAX_RATE_COUNT} (for more, a shorter period at the same rate)"
    )
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ConfigurationError(f"{what} must be (count, period), got {value!r:.80}", hint=hint)
    count, period = value
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RATE_COUNT:
        raise ConfigurationError(f"{what}: bad count {count!r}", hint=hint)
    if (
        isinstance(period, bool)
        or not isinstance(period, int | float)
        or not math.isfinite(period)
        or period <= 0
    ):
        raise ConfigurationError(f"{what}: bad period {period!r}", hint=hint)
    return count, float(period)


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
