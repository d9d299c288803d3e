"""Throw-away ZooKeeper servers on loopback: one standalone server, or an ensemble of N.

Each node is one ``java … QuorumPeerMain zoo.cfg`` process with its own temporary directory,
free loopback ports and a log file. Tests break nodes on purpose (``kill``, ``stop``,
``pause``) and mend them (``start``, ``resume``, ``heal``). Everything here is synchronous: the
signals are instantaneous, but ``start``/``stop`` block for up to a few seconds, so call them
through ``anyio.to_thread.run_sync`` from async code that must keep its event loop running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["ZooKeeperEnsemble", "ZooKeeperNotInstalled", "ZooKeeperServer"]

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
_SLF4J_JAR = Path("/usr/share/java/slf4j-simple.jar")
# zookeeper.jar's manifest names its other dependencies (netty, jute, jackson, …).
_JVM_OPTIONS = (
    "-Xms32m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.net.preferIPv4Stack=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
)
_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_SERVING_MODES = frozenset({"standalone", "leader", "follower"})


class ZooKeeperNotInstalled(RuntimeError):
    """Java or Debian's ``zookeeper`` package is missing."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def four_letter_word(port: int, word: str = "srvr", *, timeout: float = 1.0) -> str:
    """Send a four-letter command to ``127.0.0.1:port`` and return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def server_mode(port: int, *, timeout: float = 1.0) -> str | None:
    """``standalone``/``leader``/``follower`` when the server serves clients, else ``None``."""
    try:
        answer = four_letter_word(port, "srvr", timeout=timeout)
    except OSError:
        return None
    for line in answer.splitlines():
        if line.startswith("Mode:"):
            return line.partition(":")[2].strip()
    return None


class _Node:
    def __init__(self, index: int, root: Path) -> None:
        self.index = index
        self.dir = root / f"node{index + 1}"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(parents=True)
        (self.data_dir / "myid").write_text(f"{index + 1}\n")
        self.log_path = self.dir / "zookeeper.log"
        self.client_port = 0
        self.quorum_port = 0
        self.election_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    def allocate_ports(self) -> None:
        self.client_port, self.quorum_port, self.election_port = (
            _free_port(),
            _free_port(),
            _free_port(),
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _kill_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class ZooKeeperEnsemble:
    """``size`` ZooKeeper servers on loopback forming one ensemble (quorum mode).

    ``tick_time_ms=1000`` allows session timeouts from 2 s to 20 s. Use it as a context
    manager; leaving it kills every node and removes the temporary directory.
    """

    _standalone = False

    def __init__(
        self,
        size: int = 3,
        *,
        tick_time_ms: int = 1000,
        startup_timeout: float = 30.0,
        java: str = "java",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an ensemble needs at least one node")
        self.size = size
        self.tick_time_ms = tick_time_ms
        self.startup_timeout = startup_timeout
        self._java = java
        self._extra_config = dict(extra_config or {})
        self._root: Path | None = None
        self._nodes: list[_Node] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ZooKeeperEnsemble:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Write the configuration, start every node and wait until the ensemble serves."""
        java = shutil.which(self._java)
        if not ZOOKEEPER_JAR.is_file() or java is None:
            raise ZooKeeperNotInstalled(
                f"ZooKeeper needs {ZOOKEEPER_JAR} and a java runtime on PATH; "
                "run scripts/test.sh, which installs Debian's zookeeper"
            )
        self._java = java
        self._root = Path(tempfile.mkdtemp(prefix="flowcoord-zk-"))
        self._nodes = [_Node(i, self._root) for i in range(self.size)]
        weakref.finalize(self, _kill_all, self._processes)  # safety net if never closed
        try:
            for attempt in range(3):
                for node in self._nodes:
                    node.allocate_ports()
                for node in self._nodes:
                    self._write_config(node)
                    self._spawn(node)
                try:
                    self.wait_ready()
                    return
                except RuntimeError:
                    if attempt == 2 or not self._port_clash():
                        raise
                    for node in self._nodes:
                        self.kill(node.index)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill every node and remove the temporary directory."""
        _kill_all(self._processes)
        self._processes.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # -- addresses --------------------------------------------------------------------------

    @property
    def hosts(self) -> str:
        """Connection string for every node: ``127.0.0.1:p1,127.0.0.1:p2,…``."""
        return ",".join(self.host(i) for i in range(self.size))

    def host(self, i: int) -> str:
        return f"127.0.0.1:{self.port(i)}"

    def port(self, i: int) -> int:
        return self._node(i).client_port

    # -- faults -----------------------------------------------------------------------------

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (a crash: no goodbye to clients or peers)."""
        node = self._node(i)
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()
        node.paused = False

    def stop(self, i: int, timeout: float = 10.0) -> None:
        """SIGTERM node ``i`` and wait for it to exit (SIGKILL after ``timeout``)."""
        node = self._node(i)
        if node.process is not None and node.process.poll() is None:
            if node.paused:
                node.process.send_signal(signal.SIGCONT)
            node.process.terminate()
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        node.paused = False

    def start(self, i: int, *, wait: bool = True) -> None:
        """Start node ``i`` again (same ports and data); wait until it serves unless told not."""
        node = self._node(i)
        if node.running:
            return
        self._spawn(node)
        if wait:
            self.wait_ready([i])

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``: it keeps its sockets open but answers nothing."""
        node = self._node(i)
        if node.running and not node.paused:
            assert node.process is not None
            node.process.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, i: int) -> None:
        """SIGCONT node ``i``."""
        node = self._node(i)
        if node.running and node.paused:
            assert node.process is not None
            node.process.send_signal(signal.SIGCONT)
        node.paused = False

    def heal(self) -> None:
        """Resume paused nodes, start stopped ones and wait until all of them serve."""
        for node in self._nodes:
            self.resume(node.index)
        for node in self._nodes:
            if not node.running:
                self.start(node.index, wait=False)
        self.wait_ready()

    # -- inspection -------------------------------------------------------------------------

    def is_running(self, i: int) -> bool:
        """The process is alive (it may be paused)."""
        return self._node(i).running

    def mode(self, i: int, *, timeout: float = 1.0) -> str | None:
        """``leader``/``follower``/``standalone`` while node ``i`` serves clients, else None."""
        node = self._node(i)
        if not node.running or node.paused:
            return None
        return server_mode(node.client_port, timeout=timeout)

    def leader(self) -> int:
        """Index of the node that is leader (or the standalone server) right now."""
        for node in self._nodes:
            if self.mode(node.index) in ("leader", "standalone"):
                return node.index
        raise RuntimeError("no ZooKeeper node is leading right now")

    def wait_ready(self, indexes: list[int] | None = None, timeout: float | None = None) -> None:
        """Wait until the given nodes (default: every running one) serve clients.

        Raises RuntimeError with the logs' tails if they do not within ``timeout``
        (default ``startup_timeout``) or if a process exits.
        """
        wanted = [self._node(i) for i in indexes] if indexes is not None else self._nodes
        wanted = [n for n in wanted if n.process is not None]
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        pending = list(wanted)
        while pending:
            for node in list(pending):
                if not node.running:
                    raise RuntimeError(
                        f"ZooKeeper node {node.index} exited during start-up:\n"
                        + self.log_text(node.index)[-4000:]
                    )
                if node.paused or server_mode(node.client_port, timeout=0.5) in _SERVING_MODES:
                    pending.remove(node)
            if not pending:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- node {n.index} ---\n{self.log_text(n.index)[-2000:]}" for n in pending
                )
                raise RuntimeError(f"ZooKeeper nodes did not start serving in time:\n{tails}")
            time.sleep(0.05)

    def log_text(self, i: int) -> str:
        """Everything node ``i`` has logged so far (all its runs)."""
        path = self._node(i).log_path
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals --------------------------------------------------------------------------

    def _node(self, i: int) -> _Node:
        if not self._nodes:
            raise RuntimeError("the ZooKeeper servers are not running; use 'with' or open()")
        return self._nodes[i]

    def _write_config(self, node: _Node) -> None:
        lines = {
            "tickTime": str(self.tick_time_ms),
            "initLimit": "10",
            "syncLimit": "5",
            "dataDir": str(node.data_dir),
            "clientPort": str(node.client_port),
            "clientPortAddress": "127.0.0.1",
            "admin.enableServer": "false",
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "srvr,ruok,stat,mntr",
        }
        if not self._standalone:
            for peer in self._nodes:
                lines[f"server.{peer.index + 1}"] = (
                    f"127.0.0.1:{peer.quorum_port}:{peer.election_port}"
                )
        lines.update(self._extra_config)
        text = "".join(f"{key}={value}\n" for key, value in lines.items())
        (node.dir / "zoo.cfg").write_text(text)

    def _spawn(self, node: _Node) -> None:
        classpath = f"{node.dir}:{ZOOKEEPER_JAR}:{_SLF4J_JAR}"
        cmd = [self._java, *_JVM_OPTIONS, "-cp", classpath, _MAIN, str(node.dir / "zoo.cfg")]
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.dir,
                env={**os.environ, "ZOO_LOG_DIR": str(node.dir)},
                start_new_session=True,
            )
        node.paused = False
        self._processes.append(node.process)

    def _port_clash(self) -> bool:
        return any("Address already in use" in self.log_text(n.index) for n in self._nodes)


class ZooKeeperServer(ZooKeeperEnsemble):
    """One standalone ZooKeeper server on loopback. Node methods default to index 0."""

    _standalone = True

    def __init__(
        self,
        *,
        tick_time_ms: int = 1000,
        startup_timeout: float = 30.0,
        java: str = "java",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            1,
            tick_time_ms=tick_time_ms,
            startup_timeout=startup_timeout,
            java=java,
            extra_config=extra_config,
        )

    def __enter__(self) -> ZooKeeperServer:
        self.open()
        return self

    def port(self, i: int = 0) -> int:
        return super().port(i)

    def host(self, i: int = 0) -> str:
        return super().host(i)

    def kill(self, i: int = 0) -> None:
        super().kill(i)

    def stop(self, i: int = 0, timeout: float = 10.0) -> None:
        super().stop(i, timeout)

    def start(self, i: int = 0, *, wait: bool = True) -> None:
        super().start(i, wait=wait)

    def pause(self, i: int = 0) -> None:
        super().pause(i)

    def resume(self, i: int = 0) -> None:
        super().resume(i)

    def log_text(self, i: int = 0) -> str:
        return super().log_text(i)
