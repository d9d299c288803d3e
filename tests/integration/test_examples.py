"""Every example runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=EXAMPLES
    )


def test_saga_compensates_in_reverse_order() -> None:
    failed = _run("saga.py")
    assert failed.returncode == 1, failed.stderr
    lines = [line.strip() for line in failed.stdout.splitlines()]
    assert lines[0] == "saga failed: no cars left at the airport"
    assert lines[-1] == "cancelled flight FL-LIS-2026"  # booked first, cancelled last
    assert "cancelled hotel HT-LIS-2026-2" in lines
    ok = _run("saga.py", "--car-ok")
    assert ok.returncode == 0, ok.stderr
    assert "trip booked: FL-LIS-2026, HT-LIS-2026-2, CAR-FL-LIS-2026" in ok.stdout


def test_workflow_saga_compensates_and_versions(tmp_path: Path) -> None:
    failed = _run("workflow_saga.py", str(tmp_path / "a.sqlite"))
    assert failed.returncode == 1, failed.stderr
    lines = [line.strip() for line in failed.stdout.splitlines()]
    assert lines[0] == "saga failed: no cars left at the airport"
    assert set(lines[-2:]) == {"cancelled hotel", "cancelled flight for LIS"}
    ok = _run("workflow_saga.py", str(tmp_path / "b.sqlite"), "--car-ok")
    assert ok.returncode == 0, ok.stderr
    assert "trip booked: FL-LIS, HT-LIS-2, CAR-FL-LIS" in ok.stdout
    assert "resumed on v2: FL-OPO, HT-OPO-2, CAR-FL-OPO; insured: False" in ok.stdout
    assert "new on v2: FL-FAO, HT-FAO-2, CAR-FL-FAO; insured: True" in ok.stdout


def test_approval_waits_for_an_event_sent_from_another_process(tmp_path: Path) -> None:
    ok = _run("approval.py", str(tmp_path / "a.sqlite"))
    assert ok.returncode == 0, ok.stderr
    lines = [line.strip() for line in ok.stdout.splitlines()]
    assert lines[-2:] == ["published vm-2", "provisioned: vm-2.example.net"]
    assert "sent event 'approval' #1 to flow vm-request-1 (key vm-request-1-decision)" in lines
    rejected = _run("approval.py", str(tmp_path / "b.sqlite"), "--reject")
    assert rejected.returncode == 1, rejected.stderr
    lines = [line.strip() for line in rejected.stdout.splitlines()]
    assert lines[-2:] == ["freed vm-2", "provisioning failed: not approved: reject (flow REVERTED)"]
    assert "published vm-2" not in lines


def test_crash_resume_skips_done_steps(tmp_path: Path) -> None:
    proc = _run("crash_resume.py", str(tmp_path / "j.sqlite"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "worker 1 killed with SIGKILL" in out
    resumed = out.split("worker 1 killed")[1]
    assert "step 0 running" not in resumed
    assert "step 1 running" not in resumed
    assert "step 4 running" in resumed
    assert "total = 10" in resumed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, data: bytes) -> tuple[int, Any]:
    """POST ``data`` as JSON: the status and the decoded answer, errors too."""
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        kind = err.headers.get_content_type()
        return err.code, json.load(err) if kind == "application/json" else kind


def test_aiohttp_service(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "aiohttp_service.py",
            "--port",
            str(port),
            "--journal",
            str(tmp_path / "svc.sqlite"),
            "--token",
            "t0k",
        ],
        cwd=EXAMPLES,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2) as resp:
                    assert json.load(resp)["status"] == "ok"
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "service did not start"
                time.sleep(0.1)
        status, body = _post(f"{base}/provision", b'{"size": 3}')
        assert status == 200, body
        assert (body["vm_id"], body["ip"]) == ("vm-3", "10.0.0.7")
        status, again = _post(f"{base}/provision", b'{"size": "4"}')  # converted: 4
        assert (status, again["vm_id"]) == (200, "vm-4")
        # bad input: a 4xx in the API's shape, naming what is wrong; nothing started
        status, bad = _post(f"{base}/provision", b'{"size": "two"}')
        assert status == 422, bad
        assert "input 'size': 'two' is not an integer" in bad["error"]
        assert bad["inputs"] == ["size"]
        status, bad = _post(f"{base}/provision", b'{"sise": 2}')
        assert status == 422, bad
        assert "unknown input 'sise'; its inputs are: size" in bad["error"]
        status, bad = _post(f"{base}/provision", b"{}")
        assert status == 422, bad
        assert "size" in bad["error"]
        status, bad = _post(f"{base}/provision", b"size=2")
        assert (status, bad["error"]) == (400, "the request body is not JSON")
        assert bad["hint"]
        status, bad = _post(f"{base}/provision", b"[2]")
        assert (status, bad["error"]) == (400, "the request body must be a JSON object")
        # a flow that failed: a 500 saying which task and why, with the flow to look up
        status, failed = _post(f"{base}/provision", b'{"size": 99}')
        assert status == 500, failed
        assert failed["error"] == (
            "provisioning failed: ValueError: no capacity for a VM of size 99 (at most 8)"
        )
        assert (failed["state"], failed["failed_task"]) == ("REVERTED", "allocate")
        assert failed["flow_id"] in failed["hint"]
        with urllib.request.urlopen(f"{base}/api/flows/{body['flow_id']}", timeout=5) as resp:
            assert json.load(resp)["state"] == "SUCCESS"
        with urllib.request.urlopen(f"{base}/", timeout=5) as resp:
            assert b"<html" in resp.read().lower()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.zookeeper
@pytest.mark.postgres
def test_distributed_workers_survive_a_kill_9() -> None:
    proc = _run("distributed_workers.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "worker-1" in proc.stdout
    assert "killed with SIGKILL" in proc.stdout
    assert proc.stdout.count("SUCCESS") == 6
    assert "all flows succeeded: True" in proc.stdout
