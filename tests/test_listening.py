"""Each worker gets a listening socket of its own on the port (`auditrelay.listening`)."""

from __future__ import annotations

import socket

import pytest

from auditrelay.listening import ReusePortSocket, listening_socket


def test_each_worker_binds_a_socket_of_its_own_on_the_port_and_the_placeholder_takes_none() -> None:
    placeholder = ReusePortSocket.bind_to("127.0.0.1", 0)
    port = placeholder.getsockname()[1]
    workers = [listening_socket("127.0.0.1", port) for _ in range(2)]
    try:
        for sock in workers:
            assert type(sock) is socket.socket
            assert sock.fileno() != placeholder.fileno()
            assert sock.getsockname() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            sock.listen(16)
            sock.settimeout(5)
        # Connections reach the workers' sockets only: the placeholder never listens.
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(16)]
        accepted = 0
        for sock in workers:
            sock.setblocking(False)
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted += 1
        assert accepted == 16
        for client in clients:
            client.close()
    finally:
        for sock in workers:
            sock.close()
        placeholder.close()


def test_the_port_stays_reserved_against_programs_without_reuseport() -> None:
    placeholder = ReusePortSocket.bind_to("127.0.0.1", 0)
    try:
        other = socket.socket()
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", placeholder.getsockname()[1]))
        other.close()
    finally:
        placeholder.close()
