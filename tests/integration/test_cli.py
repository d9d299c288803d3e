"""The ``flowcoord`` command, run as a subprocess the way a person runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowcoord.coordination import JobSpec, post_jobs

FLOWS = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import anyio
    import flowcoord as fc

    HERE = Path(__file__).parent


    @fc.task(provides="a")
    async def add(size):
        return size + 1


    @fc.task(provides="b")
    async def slow(a):
        # Marks that it started, then waits (bounded) for a release file when asked to.
        (HERE / f"started-{os.getpid()}").write_text("")
        if os.environ.get("HOLD"):
            with anyio.move_on_after(20):
                while not (HERE / "release").exists():
                    await anyio.sleep(0.02)
        await anyio.sleep(float(os.environ.get("SLOW", "0")))
        return a * 2


    @fc.task
    async def check(b, fail=False):
        if fail:
            raise ValueError("no capacity left")


    def build():
        return fc.Linear("provision", add, slow, check)


    flow = build()
    registry = fc.FlowRegistry()
    registry.register("provision", build)
    not_a_flow = 42


    def needs_args(x):
        return build()


    def hide(field, value):  # for serve --redact
        return "***" if field == "inputs.size" else value
    """
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "myflows.py").write_text(FLOWS)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCOORD_")}
    env.update(extra)
    return env


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowcoord", *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _popen(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowcoord", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _until(pred: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def assert_clean_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit 2, and one line on stderr saying what is wrong — no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("flowcoord: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def _show(work: Path, journal: str, flow_id: str) -> Any:
    proc = cli(work, "flows", "show", flow_id, "--journal", journal, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- run, list, show, graph --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "a b", "x" * 5000])
def test_bad_flow_ids_are_refused_before_anything_is_written(work: Path, bad: str) -> None:
    journal = str(work / "ids.sqlite")
    proc = cli(work, "run", "myflows:build", "-i", "size=2", "--journal", journal, "--flow-id", bad)
    assert_clean_error(proc, "invalid flow id")
    proc = cli(work, "run", "myflows:build", "-i", "size=2", "--journal", journal, "--flow-id", "s")
    assert proc.returncode == 0, proc.stderr
    proc = cli(
        work, "flows", "retry", "s", "--from-task", "slow", "--flow", "myflows:registry",
        "--journal", journal, "--new-id", bad,
    )  # fmt: skip
    assert_clean_error(proc, "invalid new flow id")
    listed = cli(work, "flows", "list", "--journal", journal, "--json")
    assert [f["flow_id"] for f in json.loads(listed.stdout)["flows"]] == ["s"]


def test_run_on_sqlite_then_list_and_show(work: Path) -> None:
    journal = f"sqlite:///{work}/journal.sqlite"
    proc = cli(
        work, "run", "myflows:build", "-i", "size=2", "--journal", journal, "--flow-id", "f1"
    )
    assert proc.returncode == 0, proc.stderr
    first, _, store = proc.stdout.partition("\n")
    assert first.startswith("flow f1 (provision): SUCCESS in ")
    assert json.loads(store) == {"size": 2, "a": 3, "b": 6}

    proc = cli(work, "run", "myflows:flow", "--input", "size=5", "--journal", journal, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "SUCCESS"
    assert out["store"]["b"] == 12

    proc = cli(work, "flows", "list", "--journal", journal)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["FLOW_ID", "NAME", "STATE", "CREATED", "UPDATED"]
    assert len(lines) == 3
    assert any(line.startswith("f1 ") and "SUCCESS" in line for line in lines)

    page = json.loads(
        cli(work, "flows", "list", "--journal", journal, "--json", "--limit", "1").stdout
    )
    assert len(page["flows"]) == 1
    assert page["next"] == page["flows"][0]["flow_id"]
    rest = cli(work, "flows", "list", "--journal", journal, "--json", "--after", page["next"])
    assert json.loads(rest.stdout)["next"] is None

    proc = cli(work, "flows", "show", "f1", "--journal", journal)
    assert proc.returncode == 0, proc.stderr
    assert "state    SUCCESS  (3/3 tasks done)" in proc.stdout
    assert 'inputs   {"size": 2}' in proc.stdout
    status = _show(work, journal, "f1")
    assert [(t["name"], t["state"], t["attempt"]) for t in status["tasks"]] == [
        ("add", "SUCCESS", 1),
        ("slow", "SUCCESS", 1),
        ("check", "SUCCESS", 1),
    ]


def test_a_bare_sqlite_path_and_the_journal_env_var(work: Path) -> None:
    env = _env(FLOWCOORD_JOURNAL="journal.db")
    proc = cli(work, "run", "myflows:build", "-i", "size=1", "--flow-id", "e1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (work / "journal.db").exists()
    assert "e1" in cli(work, "flows", "list", env=env).stdout


def test_failed_flow_exits_1_with_one_line(work: Path) -> None:
    journal = str(work / "j.sqlite")
    proc = cli(
        work, "run", "myflows:build", "-i", "size=2", "-i", "fail=true", "--journal", journal,
        "--flow-id", "bad",
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "flowcoord: flow bad (provision): REVERTED in "
        + proc.stderr.split(" in ")[1].split(":")[0]
        + ": check: ValueError: no capacity left"
    ]
    status = _show(work, journal, "bad")
    assert status["state"] == "REVERTED"
    assert status["tasks"][2]["failure"]["type"] == "ValueError"
    assert status["tasks"][2]["failure"]["message"] == "no capacity left"


def test_inputs_are_converted_and_unknown_ones_refused(work: Path) -> None:
    # size is unannotated: JSON, else text; fail has a bool default: taken as a bool
    proc = cli(work, "run", "myflows:build", "-i", "size=2", "-i", "fail=False", "--json")
    assert proc.returncode == 0, proc.stderr
    store = json.loads(proc.stdout)["store"]
    assert (store["size"], store["fail"]) == (2, False)
    # a name no task takes is refused, naming those they take (test_cli_conventions: more)
    proc = cli(work, "run", "myflows:build", "-i", "size=2", "-i", "note=hello world")
    assert_clean_error(proc, "unknown input 'note'; its inputs are: fail, size")


def test_progress_line(work: Path) -> None:
    proc = cli(
        work, "run", "myflows:build", "-i", "size=1", "--progress", "always",
        env=_env(SLOW="0.8"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.split()  # the line is redrawn with \r, read here as newlines
    assert "provision:" in lines
    assert "3/3 tasks done, 0 running [SUCCESS]" in proc.stderr
    quiet = cli(work, "run", "myflows:build", "-i", "size=1", env=_env(SLOW="0.8"))
    assert quiet.stderr == ""  # not a terminal: no progress


def test_graph(work: Path) -> None:
    dot = cli(work, "graph", "myflows:build")
    assert dot.returncode == 0
    assert dot.stdout.startswith('digraph "provision"')
    assert '"add" -> "slow"' in dot.stdout
    mermaid = cli(work, "graph", "myflows:flow", "--format", "mermaid")
    assert mermaid.stdout.splitlines()[0] == "flowchart LR"
    assert "t0 --> t1" in mermaid.stdout


# -- clear errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "myflows:build", "--journal", "redis://localhost/0"], "unknown scheme 'redis:'"),
        (["run", "myflows:build", "--journal", "sqlite:///no/such/dir/j.db"], "does not exist"),
        (["flows", "list", "--journal", "journal.txt"], "neither a URL nor a path"),
        (["run", "myflows:nope"], "has no attribute 'nope'"),
        (["run", "nosuchmodule:flow"], "cannot import module 'nosuchmodule'"),
        (["run", "myflows"], "not of the form module:attr"),
        (["run", "myflows:not_a_flow"], "is int, not a flowcoord.Flow"),
        (["run", "myflows:needs_args"], "needs arguments (x)"),
        (["run", "myflows:build"], "inputs missing: 'add' needs 'size'"),
        (["run", "myflows:build", "-i", "size"], "is not key=value"),
        (["graph", "myflows:registry"], "is a FlowRegistry"),
        (
            ["serve", "--journal", "memory:", "--registry", "myflows:flow"],
            "not a flowcoord.FlowRegistry",
        ),
        (["flows", "show", "nope", "--journal", "memory:"], "no flow 'nope'"),
        (["flows", "list", "--journal", "memory:", "--state", "done"], "unknown state 'done'"),
    ],
)
def test_clear_errors(work: Path, args: list[str], fragment: str) -> None:
    assert_clean_error(cli(work, *args), fragment)


def test_unreachable_postgres_is_a_clear_error(work: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://app:hunter2@127.0.0.1:{port}/db?retry_deadline=0.5&connect_timeout=0.5"
    proc = cli(work, "flows", "list", "--journal", url)
    assert_clean_error(proc, "cannot reach PostgreSQL")
    assert "hunter2" not in proc.stderr


def test_usage_errors_exit_2(work: Path) -> None:
    assert cli(work).returncode == 2
    assert cli(work, "flows", "list").returncode == 2  # --journal is required
    assert (
        cli(
            work, "serve", "--journal", "memory:", "--registry", "m:r", "--port", "99999"
        ).returncode
        == 2
    )
    helptext = cli(work, "--help")
    assert helptext.returncode == 0
    for command in ("run", "flows", "graph", "serve", "demo", "bench", "worker"):
        assert command in helptext.stdout


def test_demo_delegates_to_the_demo_module(work: Path) -> None:
    proc = cli(work, "demo", str(work / "demo.sqlite"))
    assert proc.returncode == 0, proc.stderr
    assert (work / "demo.sqlite").exists()  # the demo got our argument


def test_worker_with_bad_arguments_is_a_clear_error(work: Path) -> None:
    proc = cli(work, "worker", "--zk", "127.0.0.1:2181")  # no --journal/--registry
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--registry" in proc.stderr or "--journal" in proc.stderr


# -- interrupting, resuming, cancelling --------------------------------------------------------


def _read_until(proc: subprocess.Popen[str], text: str) -> str:
    """Read the child's stderr up to a line containing ``text`` (bounded by the test timeout)."""
    assert proc.stderr is not None
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"stderr closed before {text!r}: {seen!r}"
        seen += line
    return seen


def _started(work: Path) -> bool:
    return any(work.glob("started-*"))


def test_ctrl_c_stops_and_the_flow_resumes(work: Path) -> None:
    journal = str(work / "j.sqlite")
    proc = _popen(
        work, "run", "myflows:build", "-i", "size=2", "--journal", journal, "--flow-id", "s1",
        env=_env(HOLD="1"),
    )  # fmt: skip
    try:
        _until(lambda: _started(work))
        proc.send_signal(signal.SIGINT)
        seen = _read_until(proc, "stopping after the running tasks finish")
        (work / "release").write_text("")
        _, rest = proc.communicate(timeout=30)
        err = seen + rest
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    hint = f"resume it with: flowcoord flows resume s1 --journal {journal} --flow myflows:build"
    assert f"stopped: flow s1 is SUSPENDED; {hint}" in err
    assert _show(work, journal, "s1")["state"] == "SUSPENDED"

    resumed = cli(work, "flows", "resume", "s1", "--journal", journal, "--flow", "myflows:registry")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("flow s1 (provision): SUCCESS")
    status = _show(work, journal, "s1")
    assert [t["attempt"] for t in status["tasks"]] == [1, 1, 1]


def test_ctrl_c_twice_aborts_and_the_flow_resumes(work: Path) -> None:
    journal = str(work / "j.sqlite")
    proc = _popen(
        work, "run", "myflows:build", "-i", "size=2", "--journal", journal, "--flow-id", "a1",
        env=_env(HOLD="1"),
    )  # fmt: skip
    try:
        _until(lambda: _started(work))
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "aborted: flow a1 was interrupted mid-task; resume it with" in err
    status = _show(work, journal, "a1")
    assert status["state"] == "RUNNING"  # as after a crash
    resumed = cli(work, "flows", "resume", "a1", "--journal", journal, "--flow", "myflows:build")
    assert resumed.returncode == 0, resumed.stderr
    status = _show(work, journal, "a1")
    assert status["state"] == "SUCCESS"
    assert [t["attempt"] for t in status["tasks"]] == [1, 2, 1]  # only 'slow' ran again


def test_cancel_reverts_an_unfinished_flow(work: Path) -> None:
    journal = str(work / "j.sqlite")
    proc = _popen(
        work, "run", "myflows:build", "-i", "size=2", "--journal", journal, "--flow-id", "c1",
        env=_env(HOLD="1"),
    )  # fmt: skip
    try:
        _until(lambda: _started(work))
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # two signals, not one coalesced: abort mid-task
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    cancelled = cli(work, "flows", "cancel", "c1", "--journal", journal, "--flow", "myflows:build")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith("flow c1 (provision): CANCELLED")
    status = _show(work, journal, "c1")
    assert [t["state"] for t in status["tasks"]] == ["REVERTED", "REVERTED", "PENDING"]
    again = cli(work, "flows", "cancel", "c1", "--journal", journal, "--flow", "myflows:build")
    # already cancelled: said so, exit 1 (the flow's outcome, not bad usage), nothing done
    assert again.returncode == 1, again.stderr
    assert again.stderr.startswith(
        "flowcoord: flow c1 has finished (CANCELLED); there is nothing to cancel"
    )
    resumed = cli(work, "flows", "resume", "c1", "--journal", journal, "--flow", "myflows:build")
    assert resumed.returncode == 1, resumed.stderr
    assert "has finished (CANCELLED); there is nothing to resume" in resumed.stderr
    assert len(resumed.stderr.strip().splitlines()) == 1


# -- serve -------------------------------------------------------------------------------------


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve(work: Path, free_port: int) -> None:
    base = f"http://127.0.0.1:{free_port}"
    proc = _popen(
        work, "serve", "--journal", str(work / "j.sqlite"), "--registry", "myflows:registry",
        "--port", str(free_port), "--redact", "myflows:hide", "--max-value-size", "0",
        env=_env(FLOWCOORD_TOKEN="tok"),
    )  # fmt: skip
    try:

        def up() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return _http("GET", base + "/api/health")[0] == 200
            except OSError:
                return False

        _until(up)
        status, body = _http("POST", base + "/api/flows", {"flow": "provision"}, token="tok")
        assert status == 422
        assert "size" in body["error"]
        status, body = _http(
            "POST", base + "/api/flows?wait=10", {"flow": "provision", "inputs": {"size": 1}}
        )
        assert status == 401
        status, body = _http(
            "POST", base + "/api/flows?wait=10", {"flow": "provision", "inputs": {"size": 1}}, "tok"
        )
        assert status == 200, body
        assert body["state"] == "SUCCESS"
        status, shown = _http("GET", f"{base}/api/flows/{body['flow_id']}")
        assert status == 200
        assert shown["inputs"] == {"size": "***"}  # --redact
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert b'content="/api"' in resp.read()
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:  # Prometheus
            metrics = resp.read().decode()
        assert 'flowcoord_flows_total{flow="provision",state="SUCCESS"} 1.0' in metrics
        assert "flowcoord_journal_flush_entries_count" in metrics
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"serving 1 flow(s) on {base}/" in err


def test_retry_from_a_task_as_a_new_flow(work: Path) -> None:
    journal = str(work / "j.sqlite")
    assert cli(work, "run", "myflows:build", "-i", "size=2", "--journal", journal,
               "--flow-id", "ok").returncode == 0  # fmt: skip
    proc = cli(
        work, "flows", "retry", "ok", "--from-task", "slow", "--flow", "myflows:registry",
        "--journal", journal, "--new-id", "ok2", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["store"]["b"] == 6
    status = _show(work, journal, "ok2")
    assert status["state"] == "SUCCESS"
    add, slow, _ = status["tasks"]
    assert add["started_at"] is None  # its journaled result was kept, not run again
    assert slow["started_at"] is not None
    bad = cli(work, "flows", "retry", "ok", "--from-task", "nope", "--flow",
              "myflows:registry", "--journal", journal)  # fmt: skip
    assert bad.returncode == 2
    assert "no task 'nope'" in bad.stderr


# -- take-over with a job board (ZooKeeper): a live owner is respected -------------------------


@pytest.mark.zookeeper
def test_resume_and_serve_with_zk_refuse_a_live_worker_and_force_fences_it(
    work: Path, zk_hosts: str, zk_namespace: str, free_port: int
) -> None:
    journal = str(work / "j.sqlite")
    zk = ["--zk", zk_hosts, "--namespace", zk_namespace]
    worker_err = work / "worker.err"
    with worker_err.open("w") as err_file:  # read while it runs: a file, not a pipe
        worker = subprocess.Popen(
            [sys.executable, "-m", "flowcoord", "-v", "worker", *zk, "--journal", journal,
             "--registry", "myflows:registry", "--name", "worker-x"],
            cwd=work, env=_env(HOLD="1"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err_file, text=True,
        )  # fmt: skip
    server: subprocess.Popen[str] | None = None
    try:
        anyio.run(
            lambda: post_jobs(
                [JobSpec("provision", {"size": 2}, flow_id="w1")],
                zk_hosts=zk_hosts,
                namespace=zk_namespace,
            )
        )
        _until(lambda: _started(work))  # the worker runs 'slow', held
        token = _show(work, journal, "w1")["token"]
        take = ["w1", "--journal", journal, "--flow", "myflows:registry"]

        # the CLI: refused, one line naming the owner, nothing written
        for action in ("resume", "cancel"):
            refused = cli(work, "flows", action, *take, *zk)
            assert_clean_error(refused, "flow w1 is owned by worker-x")
            assert "--force" in refused.stderr
        assert _show(work, journal, "w1")["token"] == token

        # the web face with --zk: 409 FlowOwned
        base = f"http://127.0.0.1:{free_port}"
        server = _popen(
            work, "serve", "--journal", journal, "--registry", "myflows:registry",
            "--port", str(free_port), *zk, env=_env(FLOWCOORD_TOKEN="tok"),
        )  # fmt: skip

        def up() -> bool:
            assert server is not None
            assert server.poll() is None, server.communicate()
            try:
                return _http("GET", base + "/api/health")[0] == 200
            except OSError:
                return False

        _until(up)
        status, body = _http("POST", base + "/api/flows/w1/resume", token="tok")
        assert status == 409, body
        assert (body["type"], body["owner"], body["flow_id"]) == ("FlowOwned", "worker-x", "w1")
        server.send_signal(signal.SIGINT)
        _, server_err = server.communicate(timeout=30)
        assert server.returncode == 0, server_err
        assert f"job board on {zk_hosts}" in server_err

        # forced: the CLI takes it over and finishes it; the worker is fenced out
        forced = cli(work, "flows", "resume", *take, *zk, "--force")
        assert forced.returncode == 0, forced.stderr
        assert forced.stdout.startswith("flow w1 (provision): SUCCESS")
        assert _show(work, journal, "w1")["token"] == token + 1
        (work / "release").write_text("")  # the worker's 'slow' returns; its write is refused
        _until(lambda: "job_lost" in worker_err.read_text(), timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        finally:
            worker.kill()
            if server is not None:
                server.kill()
    err = worker_err.read_text()
    assert "a newer owner holds the flow" in err, err  # job_lost: the journal refused it
    # the flow stays as the forced take-over left it
    assert _show(work, journal, "w1")["state"] == "SUCCESS"
