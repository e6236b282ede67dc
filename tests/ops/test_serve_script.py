"""scripts/serve.sh: a second server started from the same checkout on a port already serving is
refused before it touches the first server's Prometheus directory (it used to empty it, and the first
server's overview went wrong while /readyz said all was fine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_second_server_on_a_taken_port_keeps_the_first_ones_metrics(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    metrics_dir = tmp_path / "var" / "prometheus" / str(port)
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_1.db").write_bytes(b"first server's counters")
    env = {
        **os.environ,
        "PORT": str(port),
        "ADSITE_VAR_DIR": str(tmp_path / "var"),
        "VENV": str(Path(sys.executable).parents[1]),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / "serve.sh")], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        listener.close()
    assert done.returncode == 2, done.stderr
    assert f"port {port} is already serving" in done.stderr
    assert (metrics_dir / "counter_1.db").read_bytes() == b"first server's counters"


def test_readyz_says_degraded_when_the_metrics_directory_was_made_again(client, db, tmp_path, monkeypatch) -> None:
    import shutil

    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    assert client.get("/readyz").json()["checks"]["metrics"]["ok"] is True
    shutil.rmtree(metrics_dir)
    metrics_dir.mkdir()
    answer = client.get("/readyz").json()
    assert answer["checks"]["metrics"]["ok"] is False
    assert "emptied and made again" in answer["checks"]["metrics"]["error"]
    assert answer["status"] == "degraded"
