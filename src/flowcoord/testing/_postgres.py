"""A throw-away PostgreSQL cluster for tests: ``initdb`` in a temporary directory, loopback only."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

__all__ = ["PostgresCommandError", "PostgresNotInstalled", "TemporaryPostgres"]

_INSTALL_HINT = "run scripts/test.sh, which installs Debian's postgresql"


class PostgresNotInstalled(RuntimeError):
    """The PostgreSQL server binaries (``initdb``, ``pg_ctl``) cannot be found."""


class PostgresCommandError(RuntimeError):
    """``initdb`` or ``pg_ctl`` failed; the message holds its output and the server log tail."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb``, or one on ``PATH``."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        found.sort(key=lambda p: _version_key(Path(p).parent.parent.name))
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise PostgresNotInstalled(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found: {_INSTALL_HINT}"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")  # zombie or dead


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary directory, listening on a free loopback port.

    Trust authentication (or, given ``password``, scram-sha-256 over TCP with that password
    for ``postgres``), superuser ``postgres``, ``fsync`` left on (the journal's durability
    is what is under test). PostgreSQL refuses to run as root, so when this process is root
    the directory is given to the ``postgres`` user and the server tools run through
    ``runuser``. ``stop(mode="immediate")`` is a crash: no checkpoint, recovery on next start.
    The port is kept across restarts, so a DSN stays valid.

    The API is synchronous (subprocesses); from async code call it through
    ``anyio.to_thread.run_sync`` when the event loop must keep running meanwhile.
    """

    def __init__(
        self,
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str] | None = None,
        password: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._bin = Path(bin_dir) if bin_dir is not None else find_bin_dir()
        if not (self._bin / "initdb").exists() or not (self._bin / "pg_ctl").exists():
            raise PostgresNotInstalled(f"no initdb/pg_ctl in {self._bin}: {_INSTALL_HINT}")
        self._settings = dict(settings or {})
        self._password = password
        self._timeout = timeout
        self._dir: Path | None = None
        self._port: int | None = None
        self._running = False
        self._user: str | None = "postgres" if os.geteuid() == 0 else None

    # -- state ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the cluster has not been started")
        return self._port

    @property
    def dsn(self) -> str:
        auth = f"postgres:{quote(self._password, safe='')}" if self._password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def directory(self) -> Path | None:
        """The temporary directory (data in ``data/``, server log in ``server.log``)."""
        return self._dir

    def log_text(self) -> str:
        """The server log so far ('' before the first start)."""
        if self._dir is None:
            return ""
        try:
            return (self._dir / "server.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster on first use, then start the server and wait until it accepts."""
        if self._running:
            return
        if self._dir is None:
            self._init()
        assert self._dir is not None
        pid = self._postmaster_pid()
        if pid is not None and not _alive(pid):  # left by a postmaster that was killed
            for stale in [self._data / "postmaster.pid", *self._dir.glob(".s.PGSQL.*.lock")]:
                stale.unlink(missing_ok=True)
        if self._port is None:
            self._start_on_a_free_port()
        else:
            self._pg_ctl_start()
        self._running = True

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """Stop the server; ``immediate`` aborts it like a crash (no shutdown checkpoint)."""
        if not self._running or self._dir is None:
            return
        pid = self._postmaster_pid()
        if pid is None or not _alive(pid):  # it died on its own (or was killed)
            self._running = False
            return
        try:
            self._run([self._tool("pg_ctl"), "-D", str(self._data), "-m", mode, "-w",
                       "-t", str(int(self._timeout)), "stop"])  # fmt: skip
        except PostgresCommandError:
            if self._postmaster_pid() is not None:
                raise
        self._running = False

    def restart(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        self.stop(mode)
        self.start()

    def cleanup(self) -> None:
        """Stop the server (immediately) and delete its directory. Idempotent."""
        try:
            if self._running:
                try:
                    self.stop("immediate")
                except PostgresCommandError:
                    pid = self._postmaster_pid()
                    if pid is not None:  # never leave a server running on a deleted directory
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
                    raise
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
                self._running = False

    def __enter__(self) -> TemporaryPostgres:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<TemporaryPostgres port={self._port} {state} dir={self._dir}>"

    # -- internals --------------------------------------------------------------------------

    @property
    def _data(self) -> Path:
        assert self._dir is not None
        return self._dir / "data"

    def _init(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="flowcoord-pg-"))
        if self._user is not None:
            try:
                shutil.chown(self._dir, user=self._user)
            except LookupError as exc:
                self.cleanup()
                raise PostgresNotInstalled(
                    f"running as root but there is no {self._user!r} user: {_INSTALL_HINT}"
                ) from exc
        argv = [self._tool("initdb"), "-D", str(self._data), "-U", "postgres", "-E", "UTF8",
                "--no-locale", "--no-instructions", "--auth-local=trust"]  # fmt: skip
        try:
            if self._password is None:
                argv.append("--auth-host=trust")
            else:
                pwfile = self._dir / "pwfile"
                pwfile.write_text(self._password + "\n")
                if self._user is not None:
                    shutil.chown(pwfile, user=self._user)
                argv += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
            self._run(argv)
        except BaseException:
            self.cleanup()
            raise

    def _start_on_a_free_port(self) -> None:
        last: PostgresCommandError | None = None
        for _ in range(5):  # another process may grab the port between probe and bind
            self._port = _free_port()
            try:
                self._pg_ctl_start()
                return
            except PostgresCommandError as exc:
                last = exc
                if "could not bind" not in self.log_text():
                    break
        self._port = None
        assert last is not None
        raise last

    def _pg_ctl_start(self) -> None:
        assert self._dir is not None
        opts = [f"-p {self.port}", f"-k {self._dir}", "-c listen_addresses=127.0.0.1"]
        opts += [f"-c {k}={v}" for k, v in self._settings.items()]
        self._run(
            [self._tool("pg_ctl"), "-D", str(self._data), "-l", str(self._dir / "server.log"),
             "-o", " ".join(opts), "-w", "-t", str(int(self._timeout)), "start"]
        )  # fmt: skip

    def _postmaster_pid(self) -> int | None:
        if self._dir is None:
            return None
        try:
            first = (self._data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def _tool(self, name: str) -> str:
        return str(self._bin / name)

    def _run(self, argv: Sequence[str]) -> None:
        cmd = list(argv)
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(
            cmd,
            cwd=self._dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self._timeout + 10,
            check=False,
        )
        if proc.returncode != 0:
            tail = self.log_text()[-4000:]
            raise PostgresCommandError(
                f"{Path(argv[0]).name} exited with {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()}\n--- server log tail ---\n{tail}"
            )
