"""The service under test as a real process on a fresh store, its memory, and its admin API."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/run.py`: the repo root holds tests/
    sys.path.insert(1, str(ROOT))

from tests.support import Service as TestService  # noqa: E402 - needs the path above
from tests.support import alive, free_port, wait_until  # noqa: E402

__all__ = [
    "PG_ADMIN_URL",
    "ROOT",
    "MemorySampler",
    "Service",
    "free_port",
    "fresh_store",
    "tree_cpu_seconds",
    "tree_status",
]

PG_ADMIN_URL = os.environ.get("AUDITRELAY_BENCH_PG", "postgresql://127.0.0.1:5432/test")


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


def _stat_cpu_seconds(path: str) -> float:
    """User + system CPU time in a `/proc/.../stat` file (a process's or a thread's)."""
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU time of a process's main thread (its event loop, in a worker) and of
    all its other threads together (the database pool's, in a worker)."""
    main = others = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            seconds = _stat_cpu_seconds(f"/proc/{pid}/task/{task}/stat")
        except OSError:  # the thread ended meanwhile
            continue
        if int(task) == pid:
            main = seconds
        else:
            others += seconds
    return main, others


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
    """User + system CPU time of `pid` and its descendants (those alive now)."""
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


def this_checkout_first() -> str:
    """A PYTHONPATH that makes `python -m auditrelay` import this checkout's `src/`. The venv
    may be shared with another work tree (an editable install of *its* `src/`), and the
    figures must be those of the commit the results name."""
    return os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))


class Service(TestService):
    """The service as the tests run it (tests.support.Service), but with the shipped
    defaults (no test tuning, SQLite `synchronous=FULL`, one worker per core) unless
    `extra_env` says otherwise, from this checkout's `src/`, on a fresh data dir removed at
    `stop()`, with its memory sampled while it runs and one keep-alive admin client."""

    def __init__(self, database_url: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(
            Path(tempfile.mkdtemp(prefix="bench-data-", dir="/tmp")),
            database_url,
            extra_env={
                "AUDITRELAY_LOG_LEVEL": "warning",
                "PYTHONPATH": this_checkout_first(),
                **(extra_env or {}),
            },
            synchronous=None,
            tuned=False,
            ready_timeout=60,
        )
        self.memory: MemorySampler | None = None
        self.api: httpx.Client | None = None

    def start(self) -> Service:
        """Start (or, after `kill`, restart on the same store and port) and wait until ready."""
        super().start()
        if self.memory is not None:
            self.memory.stop()
        if self.api is not None:
            self.api.close()
        self.memory = MemorySampler(self.pid)
        self.api = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30
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

    def stop(self, *args: Any, **kwargs: Any) -> int:
        """Stop the service (SIGTERM, then SIGKILL after 30 s) and remove its data dir."""
        if self.memory is not None:
            self.memory.stop()
        kwargs.setdefault("timeout", 30)
        returncode = super().stop(*args, **kwargs) if self.process is not None else 0
        if self.api is not None:
            self.api.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return returncode

    def kill(self, timeout: float = 30) -> None:
        """SIGKILL every process of the service at once, as a crash of the machine would, and
        wait until they are gone; the data dir stays for `start()` to go on with it."""
        assert self.process is not None
        if self.memory is not None:
            self.memory.stop()
        members = process_tree(self.pid)
        for member in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
        self.process.wait(timeout)
        deadline = time.monotonic() + timeout
        while any(alive(m) for m in members[1:]) and time.monotonic() < deadline:
            time.sleep(0.01)

    def log(self, whole: bool = False) -> str:
        return super().log(whole) if whole else super().log()[-3000:]

    # -- admin API, over the keep-alive client --

    def _client(self) -> httpx.Client:
        assert self.api is not None, "the service was never started"
        return self.api

    def add_destination(self, **settings: Any) -> dict[str, Any]:
        response = self._client().post("/api/v1/destinations", json=settings)
        if response.status_code != 201:
            raise RuntimeError(f"creating a destination failed: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def status(self, destination_id: str) -> dict[str, Any]:
        response = self._client().get(f"/api/v1/destinations/{destination_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()["status"]
        return result

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every destination's status, by id, in one request."""
        response = self._client().get("/api/v1/destinations")
        response.raise_for_status()
        return {d["id"]: d["status"] for d in response.json()["destinations"]}

    def set_paused(self, destination_id: str, paused: bool) -> None:
        action = "pause" if paused else "resume"
        self._client().post(f"/api/v1/destinations/{destination_id}/{action}").raise_for_status()

    def retry_now(self, destination_id: str) -> None:
        """ "Retry now": the destination's next attempt comes at once, the backoff starts over."""
        self._client().post(f"/api/v1/destinations/{destination_id}/retry").raise_for_status()

    def wait_drained(self, destination_id: str, timeout: float, interval: float = 0.05) -> bool:
        """Poll until the destination's lag is 0; False on timeout."""
        try:
            wait_until(lambda: self.status(destination_id)["lag"] == 0, timeout=timeout, interval=interval)
        except AssertionError:
            return False
        return True
