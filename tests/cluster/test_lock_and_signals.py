"""The delivery lock and the signals between processes, on real files, sockets and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from auditrelay.cluster import DESTINATIONS, EVENTS, FileLock, SignalReceiver, SignalSender
from auditrelay.store import PostgresAdvisoryLock
from tests.conftest import Databases


def test_file_lock_is_held_by_one_holder_until_released(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "lock"), FileLock(tmp_path / "lock")
    assert first.try_acquire()
    assert first.try_acquire(), "taking a lock already held by the same holder is a no-op"
    assert not second.try_acquire()
    first.release()
    assert not first.still_held()
    assert second.try_acquire()
    assert second.still_held()
    second.release()


def test_advisory_lock_is_held_by_one_session_and_freed_when_it_ends(databases: Databases) -> None:
    url = databases.url("postgresql")
    first, second = PostgresAdvisoryLock(url), PostgresAdvisoryLock(url)
    assert first.try_acquire()
    assert first.still_held()
    assert not second.try_acquire()
    first.release()  # the session ends: PostgreSQL frees the lock, as when a holder dies
    assert not first.still_held()
    assert second.try_acquire()
    assert not first.try_acquire()
    second.release()


def test_advisory_lock_is_per_database(databases: Databases) -> None:
    one, other = (
        PostgresAdvisoryLock(databases.url("postgresql")),
        PostgresAdvisoryLock(databases.url("postgresql")),
    )
    assert one.try_acquire()
    assert other.try_acquire(), "services on different databases must not block each other"
    one.release()
    other.release()


def test_signals_reach_the_receiver_and_a_missing_receiver_costs_the_sender_nothing(tmp_path: Path) -> None:
    path = tmp_path / "signals"
    sender = SignalSender(path)
    sender.send(EVENTS)  # nobody listens yet: dropped without an error

    async def scenario() -> list[bytes]:
        got: list[bytes] = []
        arrived = asyncio.Event()

        def on_signal(signal: bytes) -> None:
            got.append(signal)
            if len(got) == 2:
                arrived.set()

        receiver = SignalReceiver(path, on_signal)
        await receiver.start()
        try:
            sender.send(EVENTS)
            sender.send(DESTINATIONS)
            await asyncio.wait_for(arrived.wait(), timeout=5)
        finally:
            receiver.stop()
        return got

    try:
        assert asyncio.run(scenario()) == [EVENTS, DESTINATIONS]
        assert not path.exists(), "the receiver removes its socket when it stops"
        sender.send(EVENTS)  # and again nobody listens
    finally:
        sender.close()


def test_a_receiver_replaces_the_socket_left_by_a_holder_that_died(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "signals"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(path))
    stale.close()  # a killed process leaves its socket file behind
    sender = SignalSender(path)

    async def scenario() -> bytes:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        receiver = SignalReceiver(path, lambda s: got.done() or got.set_result(s))
        await receiver.start()
        try:
            sender.send(DESTINATIONS)
            return await asyncio.wait_for(got, timeout=5)
        finally:
            receiver.stop()

    try:
        assert asyncio.run(scenario()) == DESTINATIONS
    finally:
        sender.close()
