"""Several worker processes on one port, forked from a parent that has loaded the app.

Memory: each worker used to start afresh (uvicorn's supervisor spawns them) and import the
whole app, about 70 MB (PSS) each; the supervisor itself, with what uvicorn imports, was
another 26 MB, and `multiprocessing`'s resource tracker 6 MB. Here the parent imports the
app once and forks the workers, so the pages of code and of objects made at import stay
shared between all of them (PSS divides a shared page among its sharers). Three things keep
them shared:

- `gc.freeze()` moves everything made while the app loaded out of the garbage collector's
  reach before the fork: a full collection in a worker would otherwise write to every
  object's header and copy nearly every page;
- nothing that runs is made before the fork: no thread, event loop, database engine or
  connection. The app's lifespan (in each worker) makes those; the parent checks it has no
  thread but its own before forking;
- glibc's arena limit (`MALLOC_ARENA_MAX=2`, see README "Processes and scale-out") is set
  with `mallopt` in the parent, since a forked worker keeps its parent's allocator.

The parent supervises: a worker that dies is forked again (at once: the app is loaded), a
worker that fails at start-up (uvicorn's exit code 3: its lifespan failed) stops the service,
since a new one would fail the same way. A worker whose event loop stops answering the
parent's pings (every `HEALTH_INTERVAL_SECONDS`, over a socket pair; answered by the loop
itself, so a loop blocked or a process stopped is what it finds) for
`AUDITRELAY_WORKER_TIMEOUT_SECONDS` is killed, and so replaced: what it had not answered 202
for was not acknowledged, and its clients send it again. SIGTERM or SIGINT stops the workers gracefully,
then the parent. Workers die with the parent, however it dies (`PR_SET_PDEATHSIG`), so none
lives on holding the port and delivering. Each worker listens on a socket of its own
(`auditrelay.listening`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import uvicorn

from auditrelay.config import Settings
from auditrelay.listening import ReusePortSocket, listening_socket

log = logging.getLogger("auditrelay.workers")

#: uvicorn's exit code for a server whose start-up failed (`uvicorn.config.STARTUP_FAILURE`).
STARTUP_FAILURE = 3
#: glibc's `mallopt` parameter for the number of arenas.
_M_ARENA_MAX = -8
#: How often the parent pings each worker's event loop.
HEALTH_INTERVAL_SECONDS = 1.0


def run_in_child(target: Callable[[], None]) -> int:
    """Run `target` in a forked child and return its exit code (1 on an exception).

    Used for the one-off preparation of the store: what it imports (Alembic) stays out of
    the parent, and so out of every worker."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            target()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        _exit(code)
    return _exit_code(os.waitpid(pid, 0)[1])


def serve_workers(
    settings: Settings, options: dict[str, Any], count: int, prepare: Callable[[], None]
) -> None:
    """Load the app, `prepare` the store in a child process, fork `count` workers, and
    supervise them until SIGTERM or SIGINT."""
    _limit_malloc_arenas()

    from auditrelay.api import create_app
    from auditrelay.store import load_driver

    load_driver(settings)

    # In a child: what migrating loads (Alembic) stays out of this process and the workers.
    code = run_in_child(prepare)
    if code != 0:
        sys.exit(f"auditrelay: preparing the store failed (exit code {code}); see above")
    try:
        placeholder = ReusePortSocket.bind_to(settings.host, settings.port)
    except OSError as exc:
        sys.exit(f"auditrelay: cannot listen on {settings.host}:{settings.port}: {exc}")
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    if threading.active_count() > 1:  # a thread would be missing in every worker, its locks maybe held
        raise RuntimeError(f"threads started before the workers were forked: {threading.enumerate()}")

    parent = os.getpid()
    workers: list[_Worker] = []

    def start_worker() -> _Worker:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)

        def worker() -> None:
            placeholder.close()
            ours.close()
            for other in workers:  # the parent's ends of the other workers' channels
                other.channel.close()
            _die_with_parent(parent)
            config = uvicorn.Config(app, **options)
            _AnsweringServer(config, theirs).run(sockets=[listening_socket(settings.host, settings.port)])

        pid = _fork(worker, previous)
        theirs.close()
        return _Worker(pid, ours)

    stopping: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda number, frame: stopping.append(number))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    for _ in range(count):
        workers.append(start_worker())
    log.info("started %d workers from process %d: %s", count, parent, ", ".join(str(w.pid) for w in workers))
    failed = False
    try:
        while not stopping and not failed:
            time.sleep(0.5)
            for index, current in enumerate(workers):
                done, status = os.waitpid(current.pid, os.WNOHANG)
                if done == 0:
                    current.check(settings.worker_timeout_seconds)
                    continue
                code = _exit_code(status)
                if code == STARTUP_FAILURE:
                    log.error("worker %d failed to start; stopping the service", current.pid)
                    failed = True
                    break
                current.channel.close()
                replacement = start_worker()
                log.warning(
                    "worker %d died (exit code %d); started worker %d", current.pid, code, replacement.pid
                )
                workers[index] = replacement
    finally:
        for current in workers:
            with contextlib.suppress(ProcessLookupError):  # reaped above
                os.kill(current.pid, signal.SIGTERM)
        for current in workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(current.pid, 0)
            current.channel.close()
        placeholder.close()
    if failed:
        sys.exit("auditrelay: a worker failed to start; see above")


class _Worker:
    """The parent's side of one worker: its pid and the channel its event loop answers on."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        #: Whether its loop has answered once: until then it is starting (a slow start is
        #: not a hang, and a failed one exits by itself).
        self.started = False
        #: When the oldest ping not answered yet was sent (None: all answered).
        self.waiting_since: float | None = None
        self.asked_at = 0.0
        self.checked_at = time.monotonic()
        self.killed = False

    def check(self, timeout: float) -> None:
        """Read its answers, ask again when due, and kill it when a ping has gone
        unanswered for `timeout` seconds."""
        now = time.monotonic()
        if now - self.checked_at > 3 * HEALTH_INTERVAL_SECONDS:
            # This process did not run for a while (stopped, frozen, starved): the worker
            # may not have had its turn either. Measure afresh rather than kill on a gap
            # that was the parent's.
            self.waiting_since = None
        self.checked_at = now
        try:
            while self.channel.recv(64):
                self.started = True
                self.waiting_since = None
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return  # its end is gone: it is dying, and waitpid will say so
        if now - self.asked_at >= HEALTH_INTERVAL_SECONDS:
            self.asked_at = now
            with contextlib.suppress(OSError):  # full or closed: the silence will tell
                self.channel.send(b"?")
            if self.waiting_since is None:
                self.waiting_since = now
        silent = now - self.waiting_since if self.waiting_since is not None else 0.0
        if self.started and silent > timeout and not self.killed:
            log.error(
                "worker %d has not answered for %.0f s (AUDITRELAY_WORKER_TIMEOUT_SECONDS); killing it",
                self.pid,
                silent,
            )
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class _AnsweringServer(uvicorn.Server):
    """uvicorn's server, whose event loop answers the parent's pings once it has started."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self._channel = channel
        channel.setblocking(False)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            asyncio.get_running_loop().add_reader(self._channel.fileno(), self._answer)

    def _answer(self) -> None:
        try:
            asked = self._channel.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            asked = b""
        if not asked:  # the parent is gone (and takes this process with it)
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
            return
        with contextlib.suppress(OSError):
            self._channel.send(b"!")


def _fork(target: Callable[[], None], handlers: dict[signal.Signals, Any]) -> int:
    pid = os.fork()
    if pid == 0:
        for sig, handler in handlers.items():  # the parent's handlers only queue for the parent
            signal.signal(sig, handler)
        code = 0
        try:
            target()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        _exit(code)
    return pid


def _exit(code: int) -> None:
    """Leave a forked child without running the parent's exit handlers."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _limit_malloc_arenas() -> None:
    # glibc gives each thread that allocates its own arena (up to 8 per core), and memory
    # freed in one stays there: a worker's database threads read whole events (up to 1 MiB
    # each), so a large backlog left tens of MB in arenas per worker. Two arenas keep that
    # bounded at no cost measured on throughput. An operator's MALLOC_ARENA_MAX wins (glibc
    # read it at start); the forked workers keep their parent's setting.
    if "MALLOC_ARENA_MAX" not in os.environ:
        _libc().mallopt(_M_ARENA_MAX, 2)


def _die_with_parent(parent_pid: int) -> None:
    pr_set_pdeathsig = 1
    _libc().prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
