"""A real Prometheus beside a dev fleet: it scrapes the operator and evaluates the chart's rules.

`gpufleet dev up` starts one per fleet (the binary comes from `make tools`, built from the
Go module proxy at promtool's version), bound to 127.0.0.1 on a free port, its data and
config under the fleet's state directory; `gpufleet dev down` stops it with the fleet.

The scrape job carries the labels the chart's rules select on (`job` is the release's
full name, `namespace` its namespace, as a ServiceMonitor would set them), so the
rules and the dashboard's queries run here unchanged. Targets are a file
(`file_sd_configs`) that Prometheus rereads, so an operator started later, on any
port, is added without a restart (`set_targets`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# What the chart's upSelector matches for `helm install fleet ... -n gpufleet-system`.
RELEASE = "fleet"
NAMESPACE = "gpufleet-system"
JOB = f"{RELEASE}-gpufleet"
# `make demo` runs the operator with --metrics-port 8080.
DEFAULT_TARGETS = ("127.0.0.1:8080",)
INTERVAL = "5s"  # scrape and rule evaluation: seconds matter in a demo and in tests
CHART = Path(__file__).resolve().parents[3] / "charts" / "gpufleet"


class PrometheusError(RuntimeError):
    pass


@dataclass(frozen=True)
class RunningPrometheus:
    url: str
    pid: int
    directory: Path


def directory(state: Path, fleet_name: str) -> Path:
    return state / fleet_name / "prometheus"


def chart_rule_groups(helm: Path, chart: Path = CHART) -> list[dict[str, Any]]:
    """The rule groups of the chart's PrometheusRule, rendered by helm as installed."""
    result = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(chart),
            "--namespace",
            NAMESPACE,
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise PrometheusError(f"helm could not render the chart's rules: {result.stderr.strip()}")
    groups: list[dict[str, Any]] = yaml.safe_load(result.stdout)["spec"]["groups"]
    return groups


def config(rules_file: Path, targets_file: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
            }
        ],
    }


def set_targets(where: Path, targets: tuple[str, ...] | list[str]) -> None:
    """Scrape these host:port targets from now on (Prometheus rereads the file)."""
    groups = [{"targets": list(targets), "labels": {"namespace": NAMESPACE}}]
    tmp = where / "targets.json.tmp"
    tmp.write_text(json.dumps(groups))
    tmp.replace(where / "targets.json")  # atomic: never a half-written file


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int, where: Path) -> bool:
    """The pid is a live prometheus whose data is in `where` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    marker = f"--storage.tsdb.path={where / 'data'}".encode()
    return marker in cmdline


def find(where: Path) -> RunningPrometheus | None:
    try:
        info = json.loads((where / "prometheus.json").read_text())
    except (OSError, ValueError):
        return None
    pid = int(info["pid"])
    return RunningPrometheus(str(info["url"]), pid, where) if _alive(pid, where) else None


def ready(url: str) -> bool:
    # Only the loopback Prometheus this module starts (its URL is read back from a state file).
    if not url.startswith("http://127.0.0.1:"):
        return False
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # nosec B310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    binary: Path,
    where: Path,
    rule_groups: list[dict[str, Any]],
    targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
    timeout: float = 60.0,
) -> RunningPrometheus:
    """Start Prometheus detached (its own session) and wait until it answers ready."""
    running = find(where)
    if running is not None:
        return running
    where.mkdir(parents=True, exist_ok=True)
    rules = where / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    set_targets(where, targets)
    (where / "prometheus.yml").write_text(
        yaml.safe_dump(config(rules, where / "targets.json"), sort_keys=False)
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(binary),
        f"--config.file={where / 'prometheus.yml'}",
        f"--storage.tsdb.path={where / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=400d",
        "--web.enable-lifecycle",
    ]
    with (where / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `gpufleet dev up` and a Ctrl-C there
        )
    (where / "prometheus.json").write_text(json.dumps({"url": url, "pid": proc.pid}))
    deadline = time.monotonic() + timeout
    while not ready(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(where)
            tail = (where / "prometheus.log").read_text(errors="replace")[-2000:]
            raise PrometheusError(f"prometheus did not become ready on {url}:\n{tail}")
        time.sleep(0.2)
    return RunningPrometheus(url, proc.pid, where)


def stop(where: Path, grace: float = 10.0) -> bool:
    """Stop the Prometheus of `where`: SIGTERM, SIGKILL after `grace` s. True if one ran."""
    try:
        pid = int(json.loads((where / "prometheus.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return False
    if not _alive(pid, where):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid, where) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child when started by this process
        time.sleep(0.1)
    if _alive(pid, where):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # reap it when it is our child; init reaps it otherwise
    return True
