"""Each worker gets a listening socket of its own on the port (`auditrelay.listening`)."""

from __future__ import annotations

import asyncio
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


def test_connections_accepted_on_a_workers_socket_have_nagle_off() -> None:
    """asyncio sets `TCP_NODELAY` on accepted sockets only when the listener's `proto` is TCP;
    without it an answer written as head then body waits for the client's delayed ACK (40 ms)."""

    async def accept_one() -> int:
        sock = listening_socket("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server_side = writer.get_extra_info("socket")
            accepted.set_result(server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        # What uvicorn does with the sockets it is given.
        server = await asyncio.start_server(on_connection, sock=sock)
        async with server:
            port = sock.getsockname()[1]
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(accepted, 5)
            finally:
                writer.close()

    assert asyncio.run(accept_one()) != 0
