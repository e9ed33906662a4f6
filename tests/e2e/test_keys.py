"""Key safety over the real service: a node with the wrong key, or none, refuses to start
with a message naming the key expected; two keys during a rotation; `auditrelay keys
rotate` re-seals everything, after which the old key alone opens nothing in the database; a
destination no key opens is listed, marked, says why in its status, cannot be changed, and
can be deleted."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from tests.support import ROOT, Receiver, Service, make_event, wait_until
from tests.support.service import free_port


def keys_cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditrelay", "keys", *args],
        env=service.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def restart(service: Service, key: str | None) -> Service:
    service.stop()
    service.port = free_port()
    if key is None:
        service.extra_env.pop("AUDITRELAY_SECRET_KEY", None)
    else:
        service.extra_env["AUDITRELAY_SECRET_KEY"] = key
    return service.start()


def fingerprint_of(service: Service) -> str:
    printed = keys_cli(service, "fingerprint")
    assert printed.returncode == 0, printed.stderr
    return printed.stdout.split()[0]


def sealed_rows(service: Service) -> list[bytes]:
    with sqlite3.connect(service.data_dir / "auditrelay.db") as db:
        return [bytes(row[0]) for row in db.execute("SELECT secrets FROM destinations")]


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path / "svc", "")
    yield service
    if service.process is not None and service.process.poll() is None:
        service.stop()


def test_a_node_with_another_key_or_none_refuses_to_start(
    sqlite_service: Service, receiver: Receiver
) -> None:
    first = Fernet.generate_key().decode()
    service = sqlite_service
    service.extra_env["AUDITRELAY_SECRET_KEY"] = first
    service.start()
    expected = fingerprint_of(service)
    service.add_destination(name="splunk", kind="splunk_hec", url=receiver.url, token="Splunk abc-123-secret")
    with pytest.raises(RuntimeError) as wrong:
        restart(service, Fernet.generate_key().decode())
    assert "does not open the secrets" in str(wrong.value) and expected in str(wrong.value)
    # Without any key, a node never makes one up when the store holds sealed secrets.
    with pytest.raises(RuntimeError) as missing:
        restart(service, None)
    assert "must use the key the others use" in str(missing.value)
    assert not (service.data_dir / "secret.key").exists()
    restart(service, first)
    with service.admin() as admin:
        assert admin.get("/api/v1/destinations").status_code == 200
    service.stop()


def test_rotating_the_key_across_a_restart_and_keys_rotate(
    sqlite_service: Service, receiver: Receiver
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    service = sqlite_service
    service.extra_env["AUDITRELAY_SECRET_KEY"] = old
    service.start()
    before = service.add_destination(
        name="before",
        kind="http",
        url=receiver.url,
        headers=[{"name": "X-Key", "value": "v1-secret", "secret": True}],
    )
    # Step 1 and 2 of the rotation: both keys, the new one first (it seals, both open).
    restart(service, f"{new},{old}")
    after = service.add_destination(name="after", kind="http", url=receiver.url)
    with service.admin() as admin:
        listed = {d["id"]: d for d in admin.get("/api/v1/destinations").json()["destinations"]}
    assert (
        listed[before["id"]]["secrets_unreadable"] is None
        and listed[after["id"]]["secrets_unreadable"] is None
    )
    rotated = keys_cli(service, "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 1 destination(s)" in rotated.stdout, "only the one sealed with the old key"
    # Now the raw database holds nothing the old key alone opens.
    for sealed in sealed_rows(service):
        with pytest.raises(InvalidToken):
            Fernet(old.encode()).decrypt(sealed)
        Fernet(new.encode()).decrypt(sealed)
    # The old key can go: the service runs on the new one alone, and delivers.
    restart(service, new)
    service.send(make_event())
    wait_until(lambda: len(receiver.requests) >= 2, what="delivery with the new key alone")
    # The secret header re-sealed with the new key still reaches the receiver.
    assert "v1-secret" in {r.header("x-key") for r in receiver.requests}
    service.stop()


def test_a_destination_no_key_opens_is_marked_and_can_be_deleted(
    sqlite_service: Service, receiver: Receiver
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    service = sqlite_service
    service.extra_env["AUDITRELAY_SECRET_KEY"] = old
    service.start()
    readable = service.add_destination(name="readable", kind="http", url=receiver.url)
    restart(service, f"{new},{old}")
    lost = service.add_destination(name="sealed with the new key", kind="http", url=receiver.url)
    restart(service, old)  # the new key went missing on this node
    with service.admin() as admin:
        listed = {d["id"]: d for d in admin.get("/api/v1/destinations").json()["destinations"]}
        assert listed[readable["id"]]["secrets_unreadable"] is None
        reason = listed[lost["id"]]["secrets_unreadable"]
        assert reason and "sealed with key" in reason and "AUDITRELAY_SECRET_KEY" in reason

        def says_why() -> bool:
            status = admin.get(f"/api/v1/destinations/{lost['id']}").json()["status"]
            return status["state"] == "failing" and "cannot deliver" in (status["last_error"] or {}).get(
                "message", ""
            )

        wait_until(says_why, what="the status saying why it is not delivering")
        changed = admin.patch(f"/api/v1/destinations/{lost['id']}", json={"name": "renamed"})
        assert changed.status_code == 409 and "cannot be changed" in changed.json()["detail"]
        assert admin.post(f"/api/v1/destinations/{lost['id']}/test").status_code == 409
        assert admin.delete(f"/api/v1/destinations/{lost['id']}").status_code == 204
        assert admin.get(f"/api/v1/destinations/{lost['id']}").status_code == 404
    service.send(make_event())
    wait_until(lambda: len(receiver.events()) >= 1, what="the readable destination still delivering")


def test_keys_generate_and_fingerprint(sqlite_service: Service) -> None:
    made = keys_cli(sqlite_service, "generate")
    assert made.returncode == 0
    key = made.stdout.strip()
    Fernet(key.encode())  # a valid key
    sqlite_service.extra_env["AUDITRELAY_SECRET_KEY"] = f"{key},{Fernet.generate_key().decode()}"
    printed = keys_cli(sqlite_service, "fingerprint").stdout.splitlines()
    assert len(printed) == 2 and printed[0].endswith("seals and opens") and printed[1].endswith("opens")
    assert key not in "".join(printed)
