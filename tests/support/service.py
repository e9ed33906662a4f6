"""The service as a real process (`python -m auditrelay serve`), and the processes it runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Settings that make the tests fast: quick retries, short timeouts, a short resync, and
#: two worker processes, as `serve` runs by default on a multi-core machine.
TEST_SETTINGS = {
    "AUDITRELAY_RETRY_INITIAL_SECONDS": "0.1",
    "AUDITRELAY_RETRY_MAX_SECONDS": "1",
    "AUDITRELAY_UNAUTHORIZED_RETRY_SECONDS": "0.5",
    "AUDITRELAY_CONNECT_TIMEOUT_SECONDS": "1",
    "AUDITRELAY_REQUEST_TIMEOUT_SECONDS": "2",
    "AUDITRELAY_RESYNC_SECONDS": "0.5",
    "AUDITRELAY_SLOW_REQUEST_SECONDS": "0.5",
    "AUDITRELAY_WORKERS": "2",
}


@dataclass
class Service:
    """`python -m auditrelay serve` on `data_dir` and `database_url` ("": SQLite in data_dir).

    Its environment holds nothing of the caller's `AUDITRELAY_*` variables: only the store,
    the port, private destinations allowed, `TEST_SETTINGS` (unless `tuned` is False: then
    the shipped defaults), `AUDITRELAY_SQLITE_SYNCHRONOUS=synchronous` (None: not set, so
    the shipped default, FULL) and `extra_env` last.
    """

    data_dir: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    synchronous: str | None = "NORMAL"
    tuned: bool = True
    ready_timeout: float = 30.0
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    admin_token: str = ""
    ingest_token: str = ""
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the service was never started"
        return self.process.pid

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITRELAY_")}
        env.update(
            {
                "AUDITRELAY_DATA_DIR": str(self.data_dir),
                "AUDITRELAY_DATABASE_URL": self.database_url,
                "AUDITRELAY_PORT": str(self.port),
                "AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS": "true",
            }
        )
        if self.tuned:
            env.update(TEST_SETTINGS)
        if self.synchronous is not None:
            env["AUDITRELAY_SQLITE_SYNCHRONOUS"] = self.synchronous
        env.update(self.extra_env)
        return env

    def start(self) -> Service:
        """Start the service and wait until it answers /readyz; RuntimeError if it exits or
        does not become ready within `ready_timeout`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"service-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditrelay", "serve"], env=self.env(), stdout=log, stderr=log, cwd=ROOT
        )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"service exited with {process.returncode}: {self.log()}")
            try:
                return httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout=self.ready_timeout, interval=0.05, what="the service to be ready")
        except AssertionError:
            raise RuntimeError(f"service did not become ready: {self.log()}") from None
        self.admin_token = (self.data_dir / "admin.token").read_text().strip()
        self.ingest_token = (self.data_dir / "ingest.token").read_text().strip()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self, whole: bool = False) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path else ""
        return text if whole else text[-5000:]

    # -- API shortcuts --

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=15
        )

    def ingest(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.ingest_token}"}, timeout=15
        )

    def send(self, events: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
        with self.ingest() as client:
            response = client.post("/api/v1/events", json=events)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def add_destination(self, **settings: Any) -> dict[str, Any]:
        with self.admin() as client:
            response = client.post("/api/v1/destinations", json=settings)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def ensure_org(self, name: str) -> None:
        """The organization exists (created by the admin unless it was already)."""
        with self.admin() as client:
            response = client.post("/api/v1/orgs", json={"name": name})
        assert response.status_code in (201, 409), response.text

    def destination(self, destination_id: str) -> dict[str, Any]:
        with self.admin() as client:
            response = client.get(f"/api/v1/destinations/{destination_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def delete_destination(self, destination_id: str) -> None:
        with self.admin() as client:
            client.delete(f"/api/v1/destinations/{destination_id}")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a service's worker processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie awaiting its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
