"""Journal URLs: one string names a journal backend (CLI ``--journal``, ``flowcoord serve``).

Forms::

    memory:                                   in this process only (lost at exit)
    sqlite:///abs/path/journal.sqlite         SQLite file (absolute path)
    sqlite:relative/journal.sqlite            SQLite file relative to the working directory
    ./journal.sqlite, /var/lib/x.db           a bare path ending .sqlite, .sqlite3 or .db
    postgresql://user:pw@host:5432/db?schema=flowcoord&retry_deadline=10

PostgreSQL options in the query string (``schema``, ``connect_timeout``, ``connect_deadline``,
``retry_deadline``, ``attempt_timeout``, ``min_size``, ``max_size``) go to the backend; any
other query parameter stays in the DSN for asyncpg (``sslmode=require`` …).

``must_exist=True`` (the command line's read-only commands) refuses a SQLite file that is
not there instead of creating it; a PostgreSQL database is never created (its tables are, on
open, by the backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError
from ._contract import JournalBackend

__all__ = ["URL_FORMS", "open_journal", "redact"]

URL_FORMS = "memory:, sqlite:///path/to/file.sqlite, a path ending .sqlite/.db, postgresql://..."
_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
_PG_FLOAT_OPTS = ("connect_timeout", "connect_deadline", "retry_deadline", "attempt_timeout")
_PG_INT_OPTS = ("min_size", "max_size")


def open_journal(url: str, *, must_exist: bool = False) -> JournalBackend:
    """A journal backend (not yet opened) for ``url``; raises :class:`ConfigurationError`.

    ``must_exist``: a SQLite file that does not exist is an error (``no journal at ...``)
    rather than a new, empty journal: for readers, which must not leave a file behind a typo.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("empty journal URL", hint=f"use one of: {URL_FORMS}")
    url = url.strip()
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower() if sep else ""
    if scheme == "memory":
        if rest.strip("/"):
            raise ConfigurationError(
                f"journal URL {url!r}: 'memory:' takes nothing after the colon",
                hint="write just 'memory:'",
            )
        from ._memory import MemoryJournal

        return MemoryJournal()
    if scheme == "sqlite":
        return _sqlite(url, rest, must_exist)
    if scheme in ("postgresql", "postgres"):
        return _postgres(url)
    if len(scheme) > 1 and not url.lower().endswith(_SQLITE_SUFFIXES):
        raise ConfigurationError(
            f"journal URL {redact(url)!r}: unknown scheme {scheme + ':'!r}",
            hint=f"use one of: {URL_FORMS}",
        )
    if url.lower().endswith(_SQLITE_SUFFIXES):
        return _sqlite_path(url, Path(url).expanduser(), must_exist)
    raise ConfigurationError(
        f"journal URL {url!r} is neither a URL nor a path ending .sqlite/.sqlite3/.db",
        hint=f"use one of: {URL_FORMS}",
    )


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"


def _sqlite(url: str, rest: str, must_exist: bool) -> JournalBackend:
    if rest.startswith("//"):
        parts = urlsplit(url)
        if parts.netloc:
            raise ConfigurationError(
                f"journal URL {url!r} names a host ({parts.netloc!r}); SQLite files are local",
                hint="write sqlite:///absolute/path.sqlite (three slashes) "
                "or sqlite:relative/path.sqlite",
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(
                f"journal URL {url!r}: SQLite takes no query options",
                hint="remove everything after '?'",
            )
        raw = unquote(parts.path)
    else:
        if "?" in rest:
            raise ConfigurationError(
                f"journal URL {url!r}: SQLite takes no query options",
                hint="remove everything after '?'",
            )
        raw = unquote(rest)
    if not raw.strip("/"):
        raise ConfigurationError(
            f"journal URL {url!r} has no file path",
            hint="write sqlite:///absolute/path.sqlite or sqlite:relative/path.sqlite",
        )
    return _sqlite_path(url, Path(raw).expanduser(), must_exist)


def _sqlite_path(url: str, path: Path, must_exist: bool) -> JournalBackend:
    if path.is_dir():
        raise ConfigurationError(
            f"journal URL {url!r}: {str(path)!r} is a directory",
            hint="name a file inside it, e.g. .../journal.sqlite",
        )
    parent = path.parent
    if not parent.is_dir():
        raise ConfigurationError(
            f"journal URL {url!r}: directory {str(parent)!r} does not exist",
            hint="create the directory first, or point the journal at an existing one",
        )
    if must_exist and not path.exists():
        raise ConfigurationError(
            f"no journal at {str(path)!r}",
            hint="check the path; a journal is created by the first run, worker or server "
            "that writes to it",
        )
    from ._sqlite import SQLiteJournal

    return SQLiteJournal(path)


def _postgres(url: str) -> JournalBackend:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigurationError(
            f"journal URL {redact(url)!r} is malformed: {exc}",
            hint="write postgresql://user:password@host:5432/database",
        ) from None
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigurationError(
            f"journal URL {redact(url)!r} names no host",
            hint="write postgresql://user:password@host:5432/database",
        )
    options: dict[str, Any] = {}
    keep: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            options["schema"] = value
        elif key in _PG_FLOAT_OPTS:
            options[key] = _number(url, key, value, float)
        elif key in _PG_INT_OPTS:
            options[key] = _number(url, key, value, int)
        else:
            keep.append((key, value))
    dsn = urlunsplit(parts._replace(query=urlencode(keep)))
    from ._postgres import PostgresJournal  # here: asyncpg loads only for a PostgreSQL URL

    return PostgresJournal(dsn, **options)


def _number(url: str, key: str, value: str, kind: type[float] | type[int]) -> float | int:
    try:
        number = kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigurationError(
            f"journal URL {redact(url)!r}: {key}={value!r} is not {what}",
            hint=f"write e.g. {key}={'10' if kind is int else '5.0'}",
        ) from None
    if not number > 0 and key != "min_size":
        raise ConfigurationError(
            f"journal URL {redact(url)!r}: {key} must be positive, got {value!r}"
        )
    return number
