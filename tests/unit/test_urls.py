"""Journal URLs: which backend each form opens, and the errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowcoord import ConfigurationError, MemoryJournal
from flowcoord._journal._postgres import PostgresJournal
from flowcoord._journal._sqlite import SQLiteJournal
from flowcoord._journal._urls import open_journal, redact


def test_memory() -> None:
    assert isinstance(open_journal("memory:"), MemoryJournal)
    assert isinstance(open_journal("memory://"), MemoryJournal)
    assert isinstance(open_journal("  MEMORY:  "), MemoryJournal)
    with pytest.raises(ConfigurationError, match="nothing after the colon"):
        open_journal("memory:foo")


def test_sqlite_absolute_url(tmp_path: Path) -> None:
    j = open_journal(f"sqlite://{tmp_path}/journal.sqlite")
    assert isinstance(j, SQLiteJournal)
    assert j.path == tmp_path / "journal.sqlite"


def test_sqlite_url_with_four_slashes_is_absolute_too(tmp_path: Path) -> None:
    j = open_journal(f"sqlite:///{tmp_path}/j.db")
    assert isinstance(j, SQLiteJournal)
    assert j.path.resolve() == (tmp_path / "j.db").resolve()


def test_sqlite_relative_url_and_quoting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    j = open_journal("sqlite:sub%20dir.db")
    assert isinstance(j, SQLiteJournal)
    assert j.path == Path("sub dir.db")


@pytest.mark.parametrize("suffix", [".sqlite", ".sqlite3", ".db", ".DB"])
def test_bare_paths_by_suffix(tmp_path: Path, suffix: str) -> None:
    j = open_journal(str(tmp_path / f"journal{suffix}"))
    assert isinstance(j, SQLiteJournal)
    assert j.path == tmp_path / f"journal{suffix}"


def test_relative_bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    j = open_journal("journal.sqlite")
    assert isinstance(j, SQLiteJournal)
    assert j.path == Path("journal.sqlite")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty journal URL"),
        ("   ", "empty journal URL"),
        ("redis://localhost/0", "unknown scheme 'redis:'"),
        ("journal.txt", "neither a URL nor a path"),
        ("memory", "neither a URL nor a path"),
        ("sqlite:", "has no file path"),
        ("sqlite:///", "has no file path"),
        ("sqlite://host/x.db", "names a host"),
        ("sqlite:///tmp/x.db?mode=ro", "no query options"),
        ("sqlite:x.db?mode=ro", "no query options"),
        ("sqlite:///no/such/dir/x.db", "does not exist"),
        ("/no/such/dir/x.sqlite", "does not exist"),
        ("postgresql:///db", "names no host"),
        ("postgresql://h:notaport/db", "malformed"),
        ("postgresql://h/db?retry_deadline=soon", "not a number"),
        ("postgresql://h/db?max_size=1.5", "not an integer"),
        ("postgresql://h/db?connect_timeout=0", "must be positive"),
        ("postgresql://h/db?schema=Bad-Name", "invalid PostgreSQL schema"),
    ],
)
def test_bad_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as info:
        open_journal(url)
    assert isinstance(info.value, ValueError)  # configuration errors are ValueErrors too


def test_every_error_has_a_hint() -> None:
    for url in ("", "redis://x", "sqlite:", "sqlite://h/x.db", "postgresql:///db"):
        with pytest.raises(ConfigurationError) as info:
            open_journal(url)
        assert info.value.hint


def test_a_directory_is_not_a_journal(tmp_path: Path) -> None:
    d = tmp_path / "dir.db"
    d.mkdir()
    with pytest.raises(ConfigurationError, match="is a directory"):
        open_journal(str(d))


def test_postgres_options_go_to_the_backend() -> None:
    url = (
        "postgresql://app:pw@db.example:5433/flows?schema=tenant_1&retry_deadline=2.5"
        "&connect_timeout=1&attempt_timeout=3&min_size=0&max_size=4&sslmode=disable"
    )
    j = open_journal(url)
    assert isinstance(j, PostgresJournal)
    assert j.schema == "tenant_1"
    assert j._retry_deadline == 2.5
    assert j._connect_timeout == 1.0
    assert j._attempt_timeout == 3.0
    assert (j._min_size, j._max_size) == (0, 4)
    assert j._dsn == "postgresql://app:pw@db.example:5433/flows?sslmode=disable"
    assert isinstance(open_journal("postgres://h/db"), PostgresJournal)


def test_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_journal("postgresql://app:hunter2@h/db?retry_deadline=x")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5/db?x=1") == "postgresql://u:***@h:5/db?x=1"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("postgresql://u:pw@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"
    assert redact("memory:") == "memory:"
