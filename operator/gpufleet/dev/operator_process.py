"""`gpufleet run` as a process of its own, for the benchmarks that measure it: its command
line, a free loopback port for its metrics, and whether it is ready."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_operator(kubeconfig: Path, log: IO[bytes], port: int) -> subprocess.Popen[bytes]:
    """The operator on the hub of `kubeconfig`, its metrics on `port`, its output in `log`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpufleet.cli",
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def ready(port: int) -> bool:
    try:
        # Fixed http URL on loopback.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as rsp:  # nosec B310
            return bool(rsp.status == 200)
    except OSError:
        return False
