"""The service under test as a real process on a fresh store, its memory, and its admin API."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
PG_ADMIN_URL = os.environ.get("AUDITRELAY_BENCH_PG", "postgresql://127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_store(backend: str) -> Iterator[str]:
    """The database URL of an empty store: "" (SQLite in the service's fresh data dir), or
    that of a new PostgreSQL database with a random name, dropped afterwards."""
    if backend == "sqlite":
        yield ""
        return
    import psycopg

    name = "bench_" + secrets.token_hex(6)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants: the service is a supervisor and its worker processes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def read_pss(pid: int) -> int:
    """Proportional set size in kB: private pages, plus shared ones divided among sharers."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and Pss summed over the process tree, and the largest single VmHWM, in kB
    (processes that vanished meanwhile are skipped)."""
    total = {"VmRSS": 0, "VmHWM": 0, "Pss": 0, "MaxHWM": 0}
    for member in process_tree(pid):
        try:
            status = read_status(member)
            total["Pss"] += read_pss(member)
        except OSError:
            continue
        total["VmRSS"] += status["VmRSS"]
        total["VmHWM"] += status["VmHWM"]
        total["MaxHWM"] = max(total["MaxHWM"], status["VmHWM"])
    return total


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            continue
    return total


class MemorySampler:
    """Polls the service's memory (all its processes together) as PSS, which counts a page
    shared by several processes (the interpreter, libraries) once in all, not once in each;
    `mark(phase)` starts a new phase with its own maximum."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.phase = "start"
        self.peaks_kb: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mark(self, phase: str) -> None:
        self.phase = phase

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = tree_status(self.pid)["Pss"]
            except (OSError, KeyError):
                return
            self.peaks_kb[self.phase] = max(self.peaks_kb.get(self.phase, 0), rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Service:
    """`python -m auditrelay serve` on a fresh data dir and a given database URL."""

    def __init__(self, database_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-data-", dir="/tmp"))
        self.database_url = database_url
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.memory: MemorySampler | None = None
        self.admin_token = self.ingest_token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITRELAY_")}
        env.update(
            {
                "AUDITRELAY_DATA_DIR": str(self.data_dir),
                "AUDITRELAY_DATABASE_URL": self.database_url,
                "AUDITRELAY_PORT": str(self.port),
                "AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS": "true",
                "AUDITRELAY_LOG_LEVEL": "warning",
                **self.extra_env,
            }
        )
        log = open(self.data_dir / "service.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [str(PYTHON), "-m", "auditrelay", "serve"], env=env, stdout=log, stderr=log, cwd=ROOT
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service did not become ready: {self.log()}")
            time.sleep(0.05)
        self.admin_token = (self.data_dir / "admin.token").read_text().strip()
        self.ingest_token = (self.data_dir / "ingest.token").read_text().strip()
        self.memory = MemorySampler(self.pid)
        self.admin = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30
        )
        return self

    def memory_report(self) -> dict[str, Any]:
        """Memory of all the service's processes together, in MB.

        `peak_rss_mb`, the figure the floor is checked against, is the sampled peak of their
        summed PSS (every 0.1 s): what the service really occupies, shared pages counted once.
        `rss_hwm_sum_mb` adds up each process's own RSS high-water mark: an upper bound that
        counts the shared interpreter and libraries once per process, and adds peaks that
        need not coincide. `largest_process_rss_hwm_mb` is the biggest process alone (the
        delivering one, in the backlog scenario).
        """
        assert self.memory is not None
        status = tree_status(self.pid)
        return {
            "peak_rss_mb": round(max(self.memory.peaks_kb.values(), default=0) / 1024, 1),
            "rss_hwm_sum_mb": round(status["VmHWM"] / 1024, 1),
            "largest_process_rss_hwm_mb": round(status["MaxHWM"] / 1024, 1),
            "processes": len(process_tree(self.pid)),
            "phase_peak_pss_mb": {k: round(v / 1024, 1) for k, v in self.memory.peaks_kb.items()},
            "service_cpu_s": round(tree_cpu_seconds(self.pid), 2),
        }

    def stop(self) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(AttributeError):
            self.admin.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log(self) -> str:
        path = self.data_dir / "service.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- admin API --

    def add_destination(self, **settings: Any) -> dict[str, Any]:
        response = self.admin.post("/api/v1/destinations", json=settings)
        if response.status_code != 201:
            raise RuntimeError(f"creating a destination failed: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def status(self, destination_id: str) -> dict[str, Any]:
        response = self.admin.get(f"/api/v1/destinations/{destination_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()["status"]
        return result

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every destination's status, by id, in one request."""
        response = self.admin.get("/api/v1/destinations")
        response.raise_for_status()
        return {d["id"]: d["status"] for d in response.json()["destinations"]}

    def set_paused(self, destination_id: str, paused: bool) -> None:
        action = "pause" if paused else "resume"
        self.admin.post(f"/api/v1/destinations/{destination_id}/{action}").raise_for_status()

    def wait_drained(self, destination_id: str, timeout: float, interval: float = 0.05) -> bool:
        """Poll until the destination's lag is 0; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status(destination_id)["lag"] == 0:
                return True
            time.sleep(interval)
        return False
