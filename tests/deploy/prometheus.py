"""A real Prometheus server and a real Alertmanager for tests: the Debian packages' binaries on
free ports, and the deploy/ Prometheus config pointed at the test's own targets.

`make install` installs them (the Makefile's ``system-deps``); a missing binary is an error
that says so, never a skipped test.  Each server writes into a temporary folder and is stopped
(TERM, then KILL) when the block ends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from shadowline.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy/prometheus"


def binary(name: str) -> str:
    """Path of ``prometheus``, ``promtool``, ``prometheus-alertmanager`` or ``amtool``; fails
    naming the command that installs it."""
    path = shutil.which(name)
    if path is None:
        package = (
            "prometheus-alertmanager"
            if name in {"prometheus-alertmanager", "amtool"}
            else ("prometheus")
        )
        raise RuntimeError(f"{name} is not installed: run `make install` (apt-get {package})")
    return path


@contextlib.contextmanager
def _process(
    name: str, command: list[str], url: str, folder: Path, timeout_s: float
) -> Iterator[str]:
    """Run ``command`` (logging into ``folder``) until the block ends; yields ``url`` once its
    ``/-/ready`` answers 200.  Stopped with TERM, then KILL."""
    log_path = folder / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not become ready:\n{tail}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@contextlib.contextmanager
def running(config: dict[str, Any], folder: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """Start Prometheus with ``config``; yields its base URL once it reports ready."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _process("prometheus", command, f"http://127.0.0.1:{port}", folder, timeout_s) as url:
        yield url


@contextlib.contextmanager
def alertmanager(config: dict[str, Any], folder: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """Start Alertmanager (Debian's ``prometheus-alertmanager``) with ``config``, clustering
    off (it would bind 0.0.0.0:9094); yields its base URL once it reports ready."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus-alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process("alertmanager", command, url, folder, timeout_s) as ready:
        yield ready


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, expr: str) -> dict[str, Any]:
    """The JSON answer of an instant query (``status`` is ``success`` or ``error``)."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5.0)
    result: dict[str, Any] = answer.json()
    return result


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args``; its output and exit code."""
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60)


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Alertmanager's amtool with ``args``; its output and exit code."""
    return subprocess.run([binary("amtool"), *args], capture_output=True, text=True, timeout=60)


def compose_mounts() -> dict[str, Path]:
    """Container path -> file in the repository, for the Prometheus service's volumes."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {}
    for volume in compose["services"]["prometheus"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def deploy_config(
    targets: dict[str, str],
    interval: str = "1s",
    alertmanager: str | None = None,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its jobs scraping ``targets`` (job -> host:port),
    its rule files read from the repository (as docker-compose mounts them) and its alerts sent
    to ``alertmanager`` (host:port; None: to none).  Every job must have a target, except the
    ones named in ``skip``, which are left out."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    mounts = compose_mounts()
    config["rule_files"] = [str(mounts[path]) for path in config["rule_files"]]
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] not in skip]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), f"scrape jobs {sorted(jobs)}"
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    [sender] = config["alerting"]["alertmanagers"]
    if alertmanager is None:
        del config["alerting"]
    else:
        sender["static_configs"] = [{"targets": [alertmanager]}]
    return config


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of deploy/prometheus/alerts.yml by name, with its group's name
    under ``group``."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return {
        rule["alert"]: {**rule, "group": group["name"]}
        for group in groups
        for rule in group["rules"]
        if "alert" in rule
    }
