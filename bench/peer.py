"""syslog-ng, the C forwarder we measure ourselves against, doing the same work as auditrelay
in the `peer` scenario: newline-delimited JSON events in over one TCP connection, a reliable
disk buffer, and batches of 500 HEC envelopes out to the same nginx receiver.

It runs from Debian's `syslog-ng-core` and `syslog-ng-mod-http` (installed when missing, as
the harness does for nginx), in the foreground, with its own control socket, persist file
and disk-buffer directory under a temporary directory; what it delivered is its own
`written` counter of the `http()` destination (`syslog-ng-ctl stats`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

SYSLOG_NG = "/usr/sbin/syslog-ng"
SYSLOG_NG_CTL = "/usr/sbin/syslog-ng-ctl"
PACKAGES = ("syslog-ng-core", "syslog-ng-mod-http")

#: The configuration of the issue: reliable disk buffer, `http()` destination, batches of
#: 500 lines or 1 MiB or 200 ms, two workers, the HEC envelope as the body template. The
#: source takes each line as it is (`no-parse`): `$MSG` is the event's JSON.
CONF = """\
@version: 3.38
options {{ stats-level(1); log-msg-size(1048576); flush-lines(500); }};
source s_json {{
  network(ip("127.0.0.1") port({port}) transport("tcp") flags(no-parse)
          log-msg-size(1048576) log-iw-size(10000) max-connections(4));
}};
destination d_hec {{
  http(url("http://127.0.0.1:{receiver_port}{path}") method("POST")
       headers("Authorization: Splunk {token}", "Content-Type: application/json")
       body('{{"event":$MSG}}') delimiter("\\n")
       batch-lines(500) batch-bytes(1MiB) batch-timeout(200) workers(2)
       disk-buffer(reliable(yes) dir("{dir}/buffer") disk-buf-size(2GiB) mem-buf-size(64MiB)));
}};
log {{ source(s_json); destination(d_hec); }};
"""


def ensure_syslog_ng() -> None:
    if Path(SYSLOG_NG).exists() and any(Path("/usr/lib/syslog-ng").glob("*/libhttp.so")):
        return
    for package in PACKAGES:  # one at a time: apt-get refuses the pair on some images
        print(f"apt-get install -y {package}", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", package], check=True, stdout=subprocess.DEVNULL)


class SyslogNg:
    """syslog-ng forwarding TCP lines to `receiver_port` as batched HEC requests."""

    def __init__(self, port: int, receiver_port: int, path: str, token: str) -> None:
        ensure_syslog_ng()
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="bench-syslog-ng-", dir="/tmp"))
        (self.dir / "buffer").mkdir()
        conf = CONF.format(port=port, receiver_port=receiver_port, path=path, token=token, dir=self.dir)
        (self.dir / "syslog-ng.conf").write_text(conf)
        self.control = str(self.dir / "ctl")
        self.log_file = open(self.dir / "syslog-ng.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [
                SYSLOG_NG,
                "-F",
                "--no-caps",
                "-f",
                str(self.dir / "syslog-ng.conf"),
                "-c",
                self.control,
                "-p",
                str(self.dir / "syslog-ng.pid"),
                "-R",
                str(self.dir / "syslog-ng.persist"),
                "--stderr",
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_listening(port)
        except BaseException:
            self.close()  # its directory and log too: nothing of a failed start stays behind
            raise

    def _wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"syslog-ng exited with {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                if self.written() == 0:
                    return
            except (OSError, RuntimeError):
                time.sleep(0.05)
        raise RuntimeError(f"syslog-ng did not start: {self.log()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        self.log_file.flush()
        return (self.dir / "syslog-ng.log").read_text(errors="replace")[-3000:]

    def stats(self) -> dict[str, int]:
        """The `http()` destination's counters (`written`, `dropped`, `queued`, ...)."""
        out = subprocess.run(
            [SYSLOG_NG_CTL, "stats", "-c", self.control], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            raise RuntimeError(f"syslog-ng-ctl stats failed: {out.stderr.strip()}")
        counters: dict[str, int] = {}
        for line in out.stdout.splitlines():
            fields = line.split(";")
            if len(fields) == 6 and fields[0].startswith("dst.http") and fields[1].startswith("d_hec"):
                counters[fields[4]] = counters.get(fields[4], 0) + int(fields[5])
        return counters

    def written(self) -> int:
        return self.stats().get("written", 0)

    def send(self, lines: Iterable[bytes], chunk: int = 500) -> float:
        """Send every line over one TCP connection, newline-delimited; returns when sent."""
        with socket.create_connection(("127.0.0.1", self.port)) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffered: list[bytes] = []
            for line in lines:
                buffered.append(line)
                if len(buffered) >= chunk:
                    connection.sendall(b"\n".join(buffered) + b"\n")
                    buffered.clear()
            if buffered:
                connection.sendall(b"\n".join(buffered) + b"\n")
        return time.time()

    def close(self) -> None:
        if self.log_file.closed:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)
