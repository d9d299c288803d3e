"""The command to the conventions operators know from Temporal's and DBOS's CLIs, run as
subprocesses: the journal as a history table, newest-first listing with filters and a watch,
inputs converted by the flow's annotations, finished flows, read-only commands that never
create a journal, JSON errors, ``-v`` anywhere, the worker's start line, shell completion."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import _env, assert_clean_error, cli

FLOWS = textwrap.dedent(
    """
    import os

    import flowcoord as fc


    @fc.task(provides="vm")
    async def allocate(size: int, zone: str = "eu") -> str:
        return f"vm-{size}-{zone}"


    @fc.task(provides="ip")
    async def boot(vm: str, fail: bool = False) -> str:
        if fail:
            raise ConnectionError(f"DNS refused the record for {vm}")
        return "10.0.0.2"


    @fc.task(provides="noted")
    async def note(ip, text=None, tags=None):
        return {"text": text, "tags": tags}


    def build():
        return fc.Linear("provision", allocate, boot, note)


    async def double(n: int) -> int:
        return n * 2


    @fc.workflow(name="resize")
    async def resize(ctx: fc.Context, n: int, dry: bool = False) -> int:
        return n if dry else await ctx.step(double, n)


    registry = fc.FlowRegistry()
    registry.register("provision", build)
    registry.register("resize", resize)
    """
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "convflows.py").write_text(FLOWS)
    return tmp_path


def _run(
    work: Path, journal: str, flow_id: str, *inputs: str, target: str = "convflows:build"
) -> subprocess.CompletedProcess[str]:
    args = [x for i in inputs for x in ("-i", i)]
    return cli(work, "run", target, *args, "--journal", journal, "--flow-id", flow_id)


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


def _json_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> dict[str, Any]:
    """Exit ``code``, nothing on stdout, one JSON object on stderr (type, message, hint)."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    error: dict[str, Any] = json.loads(lines[0])
    assert set(error) == {"type", "message", "hint"}
    return error


def _rows(stdout: str) -> list[list[str]]:
    """A table's rows, cells split on two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in stdout.strip().splitlines()]


# -- flows history / steps -----------------------------------------------------------------------


def test_history_is_the_journal_as_a_table_with_failures_by_type_and_message(work: Path) -> None:
    journal = str(work / "j.sqlite")
    proc = _run(work, journal, "bad", "size=2", "fail=true")
    assert proc.returncode == 1, proc.stderr
    env = _env(TZ="Asia/Kolkata")  # times say their zone
    out = _ok(cli(work, "flows", "history", "bad", "--journal", journal, env=env)).stdout
    rows = _rows(out)
    assert rows[0] == ["SEQ", "TIME", "KIND", "TASK", "ATTEMPT", "STATE", "SUMMARY"]
    lines = out.splitlines()
    assert all(re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+05:30 ", ln) for ln in lines[1:])
    kinds = [line.split()[3] for line in lines[1:]]
    assert kinds[:3] == ["flow.created", "flow.state", "task.started"]
    assert kinds[-1] == "flow.state"
    created = lines[1]
    assert "name=provision" in created
    assert 'inputs={"size":2,"fail":true}' in created
    failed = next(line for line in lines if " task.failed " in line)
    assert re.search(r" task\.failed\s+boot\s+1\s+FAILURE\s+ConnectionError: DNS refused", failed)
    assert "Traceback" not in out  # the failure by type and message, not its traceback
    succeeded = next(line for line in lines if " task.succeeded " in line)
    assert re.search(r" task\.succeeded\s+allocate\s+1\s+SUCCESS\s+result=vm-2-eu", succeeded)
    assert re.search(r" revert\.done\s+allocate\s+REVERTED", out)
    assert lines[-1].split()[4:] == ["REVERTED"]

    # steps is the same command; --json gives the entries whole (the HTTP API's shape)
    steps = _ok(cli(work, "flows", "steps", "bad", "--journal", journal, env=env)).stdout
    assert steps == out
    body = json.loads(
        _ok(cli(work, "flows", "history", "bad", "--journal", journal, "--json")).stdout
    )
    assert (body["flow_id"], body["name"]) == ("bad", "provision")
    assert [e["seq"] for e in body["entries"]] == list(range(len(lines) - 1))
    fail = next(e for e in body["entries"] if e["kind"] == "task.failed")
    assert fail["task"] == "boot"
    assert fail["data"]["failure"]["exc_types"][0] == "ConnectionError"
    assert "Traceback" in fail["data"]["failure"]["traceback"]


def test_history_of_a_workflow_shows_its_steps(work: Path) -> None:
    journal = str(work / "j.sqlite")
    _ok(_run(work, journal, "w1", "n=21", target="convflows:resize"))
    out = _ok(cli(work, "flows", "history", "w1", "--journal", journal)).stdout
    assert re.search(r" task\.succeeded\s+1:double\s+1\s+SUCCESS\s+result=42", out)
    assert re.search(r" flow\.state\s+SUCCESS\s+result=42", out)


def test_history_of_an_unknown_flow_is_a_clear_error(work: Path) -> None:
    journal = str(work / "j.sqlite")
    _ok(_run(work, journal, "f1", "size=1"))
    proc = cli(work, "flows", "history", "nope", "--journal", journal)
    assert_clean_error(proc, "no flow 'nope' in the journal")


# -- flows list ----------------------------------------------------------------------------------


def test_list_is_newest_first_and_filters_by_name_state_and_time(work: Path) -> None:
    journal = str(work / "j.sqlite")
    _ok(_run(work, journal, "b", "size=1"))
    assert _run(work, journal, "c", "size=1", "fail=yes").returncode == 1
    _ok(_run(work, journal, "a", "n=2", target="convflows:resize"))

    def ids(*args: str) -> list[str]:
        proc = _ok(cli(work, "flows", "list", "--journal", journal, "--json", *args))
        return [f["flow_id"] for f in json.loads(proc.stdout)["flows"]]

    assert ids() == ["a", "c", "b"]  # newest first, not by id
    table = _ok(cli(work, "flows", "list", "--journal", journal)).stdout
    assert [r[0] for r in _rows(table)] == ["FLOW_ID", "a", "c", "b"]
    assert re.search(r"\d\d:\d\d:\d\d[+-]\d\d:\d\d", table)  # times with their zone
    assert ids("--name", "provision") == ["c", "b"]
    assert ids("--name", "re*") == ["a"]
    assert ids("--state", "success") == ["a", "b"]
    assert ids("--state", "REVERTED,success") == ["a", "c", "b"]
    assert ids("--since", "10m") == ["a", "c", "b"]
    assert ids("--since", "2999-01-01T00:00Z") == []
    assert ids("--since", "2000-01-01", "--name", "provision", "--state", "reverted") == ["c"]
    none = _ok(cli(work, "flows", "list", "--journal", journal, "--name", "x", "--since", "1h"))
    assert none.stderr.strip() == "no flows named 'x', created since 1h"

    # pages follow the same order: --limit, then --after the last id shown
    page = json.loads(_ok(cli(work, "flows", "list", "--journal", journal, "--json",
                              "--limit", "2")).stdout)  # fmt: skip
    assert ([f["flow_id"] for f in page["flows"]], page["next"]) == (["a", "c"], "c")
    assert ids("--after", "c") == ["b"]
    text = _ok(cli(work, "flows", "list", "--journal", journal, "--limit", "1"))
    assert text.stderr.strip() == "(more: --after a)"
    assert_clean_error(
        cli(work, "flows", "list", "--journal", journal, "--after", "zz"), "--after 'zz'"
    )
    bad = cli(work, "flows", "list", "--journal", journal, "--since", "yesterday")
    assert bad.returncode == 2
    assert "'yesterday' is not a time" in bad.stderr
    assert_clean_error(
        cli(work, "flows", "list", "--journal", journal, "--state", "ok,done"),
        "unknown state 'ok'",
    )


def test_list_watch_lists_again_until_its_count_or_ctrl_c(work: Path) -> None:
    journal = str(work / "j.sqlite")
    _ok(_run(work, journal, "first", "size=1"))
    proc = _ok(
        cli(work, "flows", "list", "--journal", journal, "--watch", "0.1", "--watch-count", "3")
    )
    assert proc.stdout.count("FLOW_ID") == 3
    assert proc.stdout.count("every 0.1s, Ctrl-C to stop") == 3
    rounds = _ok(cli(work, "flows", "list", "--journal", journal, "--json", "--watch", "0.1",
                     "--watch-count", "2")).stdout.splitlines()  # fmt: skip
    assert [[f["flow_id"] for f in json.loads(r)["flows"]] for r in rounds] == [["first"]] * 2

    watcher = subprocess.Popen(
        [sys.executable, "-m", "flowcoord", "flows", "list", "--journal", journal, "--watch",
         "0.1"],
        cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        seen = ""
        while "first" not in seen:
            seen += watcher.stdout.readline()
        _ok(_run(work, journal, "later", "size=2"))  # a flow added while watching shows up
        deadline = time.monotonic() + 20
        while "later" not in seen:
            assert time.monotonic() < deadline, seen
            seen += watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=20)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err  # Ctrl-C is how a watch ends
    assert "Traceback" not in err


# -- inputs ------------------------------------------------------------------------------------


def test_inputs_are_converted_by_the_annotations(work: Path) -> None:
    proc = _ok(cli(work, "run", "convflows:build", "-i", "size=3", "-i", "fail=False",
                   "-i", "zone=007", "--json"))  # fmt: skip
    store = json.loads(proc.stdout)["store"]
    assert (store["size"], store["fail"], store["zone"]) == (3, False, "007")
    # unannotated parameters: JSON when the text parses, the text otherwise
    proc = _ok(cli(work, "run", "convflows:build", "-i", "size=1", "-i", "text=hello world",
                   "-i", "tags=[1, 2]", "--json"))  # fmt: skip
    assert json.loads(proc.stdout)["store"]["noted"] == {"text": "hello world", "tags": [1, 2]}
    proc = _ok(cli(work, "run", "convflows:resize", "-i", "n=4", "-i", "dry=no", "--json"))
    assert json.loads(proc.stdout)["store"]["result"] == 8


@pytest.mark.parametrize(
    ("target", "inputs", "fragment"),
    [
        ("convflows:build", ["size=abc"],
         "flow 'provision': input 'size': 'abc' is not an integer (task 'allocate' takes "
         "size: int)"),
        ("convflows:build", ["size=1", "fail=maybe"], "input 'fail': 'maybe' is not a boolean"),
        ("convflows:resize", ["n=abc"],
         "flow 'resize': input 'n': 'abc' is not an integer (the workflow takes n: int)"),
        ("convflows:build", ["size=1", "colour=red", "vm=x"],
         "flow 'provision': unknown inputs 'colour', 'vm'; its inputs are: fail, size, tags, "
         "text, zone"),
        ("convflows:resize", ["n=1", "m=2"],
         "flow 'resize': unknown input 'm'; its inputs are: dry, n"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_line_errors_before_anything_is_journaled(
    work: Path, target: str, inputs: list[str], fragment: str
) -> None:
    journal = work / "j.sqlite"
    args = [x for i in inputs for x in ("-i", i)]
    proc = cli(work, "run", target, *args, "--journal", str(journal))
    assert_clean_error(proc, fragment)
    assert not journal.exists()
    error = _json_error(cli(work, "run", target, *args, "--json"))
    assert error["type"] == "FlowDefinitionError"
    assert fragment in error["message"]


# -- finished flows; read-only commands ---------------------------------------------------------


def test_cancel_or_resume_of_a_finished_flow_says_so_and_exits_1(work: Path) -> None:
    journal = str(work / "j.sqlite")
    _ok(_run(work, journal, "done", "size=1"))
    before = _ok(cli(work, "flows", "history", "done", "--journal", journal, "--json")).stdout
    for action in ("cancel", "resume"):
        args = ["flows", action, "done", "--journal", journal, "--flow", "convflows:registry"]
        proc = cli(work, *args)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.splitlines() == [
            f"flowcoord: flow done has finished (SUCCESS); there is nothing to {action} "
            "(a finished flow stays as it is; run it again as a new flow (or retry it from a "
            "task))"
        ]
        error = _json_error(cli(work, *args, "--json"), code=1)
        assert error["type"] == "FlowFinished"
        assert error["message"] == f"flow done has finished (SUCCESS); there is nothing to {action}"
    after = _ok(cli(work, "flows", "history", "done", "--journal", journal, "--json")).stdout
    assert after == before  # nothing written


@pytest.mark.parametrize(
    "command",
    [
        ["flows", "list"],
        ["flows", "show", "f1"],
        ["flows", "history", "f1"],
        ["flows", "steps", "f1"],
        ["flows", "resume", "f1", "--flow", "convflows:build"],
        ["flows", "cancel", "f1", "--flow", "convflows:build"],
        ["flows", "retry", "f1", "--from-task", "boot", "--flow", "convflows:build"],
    ],
)
def test_commands_on_a_journal_that_is_not_there_never_create_it(
    work: Path, command: list[str]
) -> None:
    for journal in ("typo.sqlite", f"sqlite:///{work}/typo.db", "sqlite:typo.sqlite3"):
        proc = cli(work, *command, "--journal", journal)
        assert_clean_error(proc, "no journal at '")
        assert "typo" in proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["convflows.py"]


# -- JSON errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind", "fragment"),
    [
        (["run", "convflows:nope"], "ConfigurationError", "has no attribute 'nope'"),
        (["flows", "list", "--journal", "typo.sqlite"], "ConfigurationError", "no journal at"),
        (["flows", "list", "--journal", "memory:", "--state", "done"], "ConfigurationError",
         "unknown state 'done'"),
        (["flows", "show", "nope", "--journal", "memory:"], "FlowNotFound", "no flow 'nope'"),
        (["flows", "history", "nope", "--journal", "memory:"], "FlowNotFound", "no flow 'nope'"),
        (["flows", "resume", "x", "--journal", "typo.db", "--flow", "convflows:build"],
         "ConfigurationError", "no journal at"),
        (["flows", "cancel", "x", "--journal", "memory:", "--flow", "convflows:build"],
         "FlowNotFound", "no flow 'x'"),
        (["flows", "retry", "x", "--from-task", "boot", "--journal", "memory:", "--flow",
          "convflows:build"], "FlowNotFound", "no flow 'x'"),
        (["check-compat", "convflows:build", "--journal", "memory:"], "ConfigurationError",
         "not a flowcoord.FlowRegistry"),
        (["flows", "list", "--journal", "memory:", "--limit", "0"], "UsageError",
         "argument --limit: '0' is not a number from 1 to 10000"),
        (["run", "convflows:build", "--bogus"], "UsageError", "unrecognized arguments: --bogus"),
    ],
)  # fmt: skip
def test_errors_under_json_are_one_json_object(
    work: Path, args: list[str], kind: str, fragment: str
) -> None:
    error = _json_error(cli(work, *args, "--json"))
    assert error["type"] == kind
    assert fragment in error["message"]
    assert "\n" not in error["message"]
    assert error["hint"] is None or isinstance(error["hint"], str)


def test_json_error_hints_are_kept_apart_from_the_message(work: Path) -> None:
    error = _json_error(cli(work, "flows", "show", "nope", "--journal", "memory:", "--json"))
    assert error["message"] == "no flow 'nope' in the journal memory:"
    assert error["hint"] == "list flows with: flowcoord flows list --journal URL"
    usage = _json_error(cli(work, "flows", "list", "--json"))  # --journal is required
    assert usage["type"] == "UsageError"
    assert "--journal" in usage["message"]
    assert usage["hint"] == "see: flowcoord flows list --help"


# -- demo, -v, worker ----------------------------------------------------------------------------


def test_demo_parses_its_arguments(work: Path) -> None:
    proc = cli(work, "demo", "--bogus")
    assert proc.returncode == 2
    assert "unrecognized arguments: --bogus" in proc.stderr
    assert not (work / "--bogus").exists()
    helptext = _ok(cli(work, "demo", "--help"))
    assert "JOURNAL_PATH" in helptext.stdout
    (work / "old.sqlite").write_text("")
    proc = cli(work, "demo", "old.sqlite")
    assert proc.returncode == 2
    assert "old.sqlite exists: the demo writes a new journal" in proc.stderr
    proc = cli(work, "demo", "no/such/dir/j.sqlite")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert not (work / "no").exists()


def test_verbose_before_or_after_the_command_shows_task_events(work: Path) -> None:
    quiet = _ok(cli(work, "run", "convflows:build", "-i", "size=1"))
    assert quiet.stderr == ""
    for args in (["-v", "run", "convflows:build"], ["run", "-v", "convflows:build"],
                 ["run", "convflows:build", "--verbose"]):  # fmt: skip
        proc = _ok(cli(work, *args, "-i", "size=1", "--flow-id", "v1"))
        events = [ln for ln in proc.stderr.splitlines() if "task_state" in ln]
        for task in ("allocate", "boot", "note"):
            assert any(f"task={task}" in ln and "new=RUNNING" in ln for ln in events), events
            assert any(f"task={task}" in ln and "new=SUCCESS" in ln for ln in events), events
        assert "flow_id=v1" in events[0]
    _ok(cli(work, "flows", "-v", "list", "--journal", "memory:"))  # a group takes it too


def test_the_worker_prints_one_start_line(work: Path) -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/db"
    proc = cli(
        work, "worker", "--zk", "127.0.0.1:1", "--namespace", "/ops", "--journal", url,
        "--registry", "convflows:registry", "--capacity", "4", "--session-timeout", "0.5",
        "--name", "w-1", "--queue", "bulk", "--queue", "urgent", "--queue-limit", "bulk=3",
        "--worker-limit", "urgent=1", "--partition-limit", "bulk=2", "--rate-limit",
        "urgent=10/1.5",
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2  # no ZooKeeper there: a clear error after the start line
    assert lines[0] == (
        "flowcoord worker w-1: ZooKeeper 127.0.0.1:1 (namespace /ops, board /board, session "
        "timeout 0.5s); journal postgresql://app:***@127.0.0.1:1/db; registry "
        "convflows:registry (2 flows: provision, resize); capacity 4, max waiting 100, "
        "sleepers of 60s+ handed back, max claims 5, max failures 3, shutdown timeout 30s; "
        "queues bulk (3 at once, 2 per "
        "partition), urgent (1 here, 10 per 1.5s); "
        "SIGTERM or Ctrl-C hands its jobs back and stops"
    )
    assert lines[1].startswith("flowcoord: error: no ZooKeeper server of '127.0.0.1:1'")
    assert "hunter2" not in proc.stderr
    assert len(lines) == 2
    bad = cli(
        work, "worker", "--zk", "127.0.0.1:1", "--journal", url, "--registry",
        "convflows:registry", "--queue", "bulk", "--worker-limit", "other=1",
    )  # fmt: skip
    assert bad.returncode == 2
    assert "does not serve queue 'other'" in bad.stderr
    kept = cli(
        work, "worker", "--zk", "127.0.0.1:1", "--journal", url, "--registry",
        "convflows:registry", "--hand-back-after", "never", "--session-timeout", "0.5",
    )  # fmt: skip
    assert "max waiting 100, sleepers kept, max claims" in kept.stderr
    for wrong in ("-1", "soon", "inf"):
        refused = cli(
            work, "worker", "--zk", "127.0.0.1:1", "--journal", url, "--registry",
            "convflows:registry", "--hand-back-after", wrong,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "--hand-back-after" in refused.stderr
        assert "nor 'never'" in refused.stderr


# -- shell completion ----------------------------------------------------------------------------


def test_completion_prints_the_shells_script(work: Path) -> None:
    bash = _ok(cli(work, "completion", "bash")).stdout
    assert "complete -o nospace -o default -o bashdefault -F _python_argcomplete flowcoord" in bash
    assert "compdef _python_argcomplete flowcoord" in _ok(cli(work, "completion", "zsh")).stdout
    assert "flowcoord" in _ok(cli(work, "completion", "fish")).stdout
    assert cli(work, "completion", "tcsh").returncode == 2


def _complete(work: Path, line: str, journal: str | None = None) -> list[str]:
    out = work / "completions"
    env = _env(
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_SHELL="bash",
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        _ARGCOMPLETE_STDOUT_FILENAME=str(out),
        **({"FLOWCOORD_JOURNAL": journal} if journal else {}),
    )
    proc = cli(work, env=env)
    assert proc.returncode == 0, proc.stderr
    return sorted(word.strip() for word in out.read_text().split("\x0b"))


def test_completion_completes_commands_states_and_flow_ids(work: Path) -> None:
    journal = str(work / "j.sqlite")
    _ok(_run(work, journal, "flow-1", "size=1"))
    _ok(_run(work, journal, "flow-2", "size=1"))
    assert _complete(work, "flowcoord fl") == ["flows"]
    assert "history" in _complete(work, "flowcoord flows ")
    assert "steps" in _complete(work, "flowcoord flows ")
    assert _complete(work, "flowcoord flows list --state REV") == ["REVERTED", "REVERTING"]
    ids = _complete(work, f"flowcoord flows history --journal {journal} flow-")
    assert ids == ["flow-1", "flow-2"]
    assert _complete(work, "flowcoord flows show flow-", journal=journal) == ["flow-1", "flow-2"]
    assert _complete(work, "flowcoord flows show --journal typo.sqlite f") == [""]
    assert not (work / "typo.sqlite").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_completion_in_bash_with_the_printed_script(work: Path) -> None:
    exe = Path(sys.executable).parent / "flowcoord"
    if not exe.exists():
        pytest.skip("the flowcoord script is not installed beside this Python")
    script = textwrap.dedent(
        """
        eval "$(flowcoord completion bash)"
        COMP_LINE="flowcoord flows li"; COMP_POINT=${#COMP_LINE}
        COMP_WORDS=(flowcoord flows li); COMP_CWORD=2
        _python_argcomplete flowcoord
        echo "${COMPREPLY[*]}"
        """
    )
    env = _env(PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["list"]
