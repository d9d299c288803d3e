"""``flowcoord worker --queue NAME --metrics-port PORT`` as a real process on a real ZooKeeper:
it runs the jobs of the queues it serves only, and serves Prometheus metrics meanwhile."""

from __future__ import annotations

import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import anyio
import pytest

import flowcoord as fc
from flowcoord.coordination import open_board

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


async def test_the_cli_worker_serves_its_queues_and_its_metrics(
    zk_hosts: str, zk_namespace: str, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    effects = tmp_path / "effects"
    async with open_board(zk_hosts=zk_hosts, namespace=zk_namespace) as board:
        await board.declare_queue("urgent")
        await board.declare_queue("bulk")
        await board.post("chain", {"fid": "u-1", "pause": 0.0}, flow_id="u-1", queue="urgent")
        await board.post("chain", {"fid": "b-1", "pause": 0.0}, flow_id="b-1", queue="bulk")
        port = _port()
        env = {**os.environ, "ZK_WORKER_EFFECTS": str(effects)}
        cmd = [sys.executable, "-m", "flowcoord", "worker", "--zk", zk_hosts]
        cmd += ["--namespace", zk_namespace, "--journal", f"sqlite:///{journal}"]
        cmd += ["--registry", "tests.faults._zk_worker:cli_registry", "--name", "q-cli"]
        cmd += ["--queue", "urgent", "--metrics-port", str(port), "--session-timeout", "2"]
        err = tmp_path / "worker.stderr"
        with err.open("wb") as out:
            proc = await anyio.open_process(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
        async with proc:
            try:
                with anyio.fail_after(20):
                    while True:
                        if journal.exists():
                            async with fc.SQLiteJournal(journal) as j:
                                rec = await j.get_flow("u-1")
                            if rec is not None and rec.state == "SUCCESS":
                                break
                        assert proc.returncode is None, err.read_text()
                        await anyio.sleep(0.05)
                queued = {j.flow_id for j in await board.jobs()}
                assert queued == {"b-1"}  # the bulk queue is not this worker's
                metrics = await anyio.to_thread.run_sync(_scrape, port)
                assert 'flowcoord_jobs_total{event="claimed"} 1.0' in metrics
                assert 'flowcoord_flows_total{flow="chain",state="SUCCESS"} 1.0' in metrics
                assert 'flowcoord_session_state{state="CONNECTED"} 1.0' in metrics
                proc.send_signal(signal.SIGTERM)
                with anyio.fail_after(15):
                    assert await proc.wait() == 0, err.read_text()
            finally:
                if proc.returncode is None:
                    proc.kill()
    text = err.read_text()
    assert "queues urgent;" in text.splitlines()[0]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in text.splitlines()[0]
