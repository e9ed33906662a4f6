"""`auditrelay serve | migrate | token create|list|revoke | org create|list | user create |
keys generate|fingerprint|rotate`.

Heavy modules (the store, the app) are imported where they are used: with several workers,
the `serve` process itself only supervises them, and should not carry what they carry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from auditrelay.config import Settings, configure_logging
from auditrelay.errors import AuditrelayError, ConfigurationError

if TYPE_CHECKING:
    from auditrelay.store import Database

#: The values of `auditrelay.security.Role` (a test keeps the two in step).
ROLES = ("admin", "owner", "viewer", "ingest")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="auditrelay", description="Stream audit events to SIEMs.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="migrate the store if needed and run the service")
    commands.add_parser("migrate", help="upgrade the database schema in place")
    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create a token and print it alone on stdout")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--name", default=None)
    create.add_argument("--org", default=None, help="scope the token to one organization")
    create.add_argument("--expires-in", default=None, help="how long it works, such as 90d, 12h, 30m")
    token_commands.add_parser("list", help="list tokens (never their secrets)")
    revoke = token_commands.add_parser("revoke", help="revoke a token: refused at once")
    revoke.add_argument("token_id")
    org = commands.add_parser("org", help="manage organizations")
    org_commands = org.add_subparsers(dest="org_command", required=True)
    org_create = org_commands.add_parser("create", help="create an organization")
    org_create.add_argument("name")
    org_commands.add_parser("list", help="list organizations")
    user = commands.add_parser("user", help="manage people")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_create = user_commands.add_parser(
        "create", help="create a person; their password is read from standard input"
    )
    user_create.add_argument("email")
    user_create.add_argument("--admin", action="store_true", help="an instance admin")
    user_create.add_argument("--org", default=None, help="the organization they belong to")
    user_create.add_argument("--role", choices=("owner", "viewer"), default=None, help="their role there")
    keys = commands.add_parser("keys", help="the secret keys that seal destination secrets")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser("generate", help="print a new key")
    keys_commands.add_parser("fingerprint", help="print the fingerprints of the keys this node has")
    keys_commands.add_parser("rotate", help="re-seal every secret with the first key")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except pydantic.ValidationError as exc:
        # Name the variable and the problem, never the value: it may hold a password.
        problems = "; ".join(
            f"AUDITRELAY_{'_'.join(str(p) for p in e['loc']).upper() or 'SETTINGS'}: {e['msg']}"
            for e in exc.errors()
        )
        sys.exit(f"auditrelay: invalid configuration: {problems}")
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "migrate":
            from auditrelay.store import Database, upgrade_to_head

            database = Database(settings)
            upgrade_to_head(database)
            database.dispose()
            print("database is at the latest schema", file=sys.stderr)
        elif args.command == "token":
            _token_command(args, settings)
        elif args.command == "org":
            _org_command(args, settings)
        elif args.command == "user":
            _user_command(args, settings)
        elif args.command == "keys":
            _keys_command(args, settings)
    except AuditrelayError as exc:
        reasons = "".join(f"; {e.field}: {e.message}" if e.field else f"; {e.message}" for e in exc.errors)
        sys.exit(f"auditrelay: {exc.detail}{reasons}")


def _token_command(args: argparse.Namespace, settings: Settings) -> None:
    """`token create` prints the token alone on stdout; `list` a table; `revoke` one line."""
    import time

    from auditrelay.errors import NotFound
    from auditrelay.security import Principal, Role
    from auditrelay.services import RequestContext, parse_duration, render_token, token_audit_event
    from auditrelay.store import Database, cli_list_tokens, cli_revoke_token, issue_token, upgrade_to_head

    database = Database(settings)
    try:
        upgrade_to_head(database)
        if args.token_command == "create":
            role = Role(args.role)
            if role is Role.OWNER and not args.org:
                sys.exit("auditrelay: an owner token belongs to one organization: give --org")
            if role is Role.ADMIN and args.org:
                sys.exit("auditrelay: an admin token is instance-wide; use --role owner for one organization")
            expires_at = None
            if args.expires_in:
                try:
                    expires_at = int((time.time() + parse_duration(args.expires_in)) * 1000)
                except ValueError as exc:
                    sys.exit(f"auditrelay: --expires-in {exc}")
            name = args.name or f"{args.role} token (cli)"
            print(issue_token(database, role, name, args.org, expires_at))
        elif args.token_command == "list":
            print(f"{'ID':36}  {'ROLE':6}  {'ORG':16}  {'PREFIX':18}  {'EXPIRES':24}  {'REVOKED':24}  NAME")
            for token in cli_list_tokens(database):
                row = render_token(token)
                print(
                    f"{row['id']:36}  {row['role']:6}  {row['org'] or '-':16}  {row['prefix']:18}  "
                    f"{row['expires_at'] or '-':24}  {row['revoked_at'] or '-':24}  {row['name']}"
                )
        else:
            cli = Principal(token_id="", name="auditrelay token revoke (cli)", role=Role.ADMIN, org=None)
            context = RequestContext(ip_address=None, user_agent="auditrelay cli")
            try:
                record = cli_revoke_token(
                    database, args.token_id, lambda r: [token_audit_event("revoke", r, cli, context)]
                )
            except NotFound:
                sys.exit(f"auditrelay: no token {args.token_id}")
            print(f"revoked {record.id} ({record.name}) at {render_token(record)['revoked_at']}")
    finally:
        database.dispose()


#: Who acts in the audit events of changes made on the command line.
CLI_ACTOR_NAME = "auditrelay cli"


def _cli_principal() -> Any:
    from auditrelay.security import Principal, Role
    from auditrelay.services import RequestContext

    return (
        Principal(token_id="", name=CLI_ACTOR_NAME, role=Role.ADMIN, org=None),
        RequestContext(ip_address=None, user_agent=CLI_ACTOR_NAME),
    )


def _org_command(args: argparse.Namespace, settings: Settings) -> None:
    """`org create NAME` prints the name; `org list` a table."""
    from auditrelay.services import ORG_NAME, ORG_NAME_RULE, org_audit_event
    from auditrelay.store import Database, cli_create_org, cli_list_orgs, iso_from_ms, upgrade_to_head

    database = Database(settings)
    try:
        upgrade_to_head(database)
        if args.org_command == "create":
            if not ORG_NAME.fullmatch(args.name):
                sys.exit(f"auditrelay: the organization's name {ORG_NAME_RULE}")
            principal, context = _cli_principal()
            record = cli_create_org(
                database, args.name, lambda r: [org_audit_event("create", r, principal, context)]
            )
            print(record.name)
        else:
            print(f"{'NAME':24}  {'DESTINATIONS':>12}  {'TOKENS':>6}  {'MEMBERS':>7}  {'CREATED':24}  TITLE")
            for org in cli_list_orgs(database):
                created = iso_from_ms(org.created_at_ms) if org.created_at_ms else "-"
                print(
                    f"{org.name:24}  {org.destinations:>12}  {org.tokens:>6}  {org.members:>7}  "
                    f"{created:24}  {org.title}"
                )
    finally:
        database.dispose()


def _user_command(args: argparse.Namespace, settings: Settings) -> None:
    """`user create EMAIL --admin | --org O --role owner|viewer`, the password on stdin
    (a prompt without echo on a terminal, the first line of a pipe)."""
    import getpass

    from auditrelay.model import Membership
    from auditrelay.security import hash_password, password_problem
    from auditrelay.services import check_email, user_audit_event
    from auditrelay.store import Database, cli_create_user, upgrade_to_head

    if args.admin == bool(args.org):
        sys.exit("auditrelay: give either --admin, or --org NAME with --role owner|viewer")
    if args.org and not args.role:
        sys.exit("auditrelay: give the person's --role in the organization: owner or viewer")
    if args.admin and args.role:
        sys.exit("auditrelay: --role is for --org; an admin has every role")
    try:
        email = check_email(args.email)
    except ValueError as exc:
        sys.exit(f"auditrelay: the email {exc}")
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            sys.exit("auditrelay: the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if (problem := password_problem(password)) is not None:
        sys.exit(f"auditrelay: the password {problem}")
    database = Database(settings)
    try:
        upgrade_to_head(database)
        principal, context = _cli_principal()
        member_of = [Membership(args.org, args.role)] if args.org else []
        record = cli_create_user(
            database,
            email,
            hash_password(password),
            args.admin,
            member_of,
            lambda u: [user_audit_event("create", u, principal, context)],
        )
        print(record.id)
    finally:
        database.dispose()


def serve(settings: Settings) -> None:
    import uvicorn

    configure_logging(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "loop": "uvloop" if settings.event_loop == "uvloop" else "asyncio",
    }
    workers = settings.worker_count
    if workers == 1:
        from auditrelay.api import create_app

        prepare(settings)
        uvicorn.run(create_app(settings), **options)
        return
    # Several processes share the port; their metrics meet in a directory that must start
    # empty, named before the app (and prometheus_client) loads. This process loads the
    # app, prepares the store in a child (Alembic stays out of the workers) and forks the
    # workers (`auditrelay.workers` says why).
    metrics_dir = settings.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(mode=0o700, parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    from auditrelay.workers import serve_workers

    serve_workers(settings, options, workers, prepare=lambda: prepare_or_exit(settings))


def prepare(settings: Settings) -> None:
    """Before serving: migrate, create the first tokens, and check the secret keys (or make
    the first one), once."""
    from auditrelay.store import Database, upgrade_to_head

    database = Database(settings)
    try:
        upgrade_to_head(database)
        if settings.create_initial_tokens:
            _first_start_tokens(database, settings.data_dir)
        check_keys(database, settings)
    finally:
        database.dispose()


def check_keys(database: Database, settings: Settings) -> None:
    """Refuse to start with keys that open none of the stored secrets (the other nodes'
    key is missing: every destination would stop); warn about each destination no key opens.
    A key is generated only while the store holds no sealed secret. Made here, once: workers
    starting together must not each generate a different key."""
    import logging

    from auditrelay.security import SecretBox
    from auditrelay.store import DestinationRows, check_sealed, count_sealed

    box = SecretBox.from_settings(
        settings.secret_key, settings.data_dir, may_generate=count_sealed(database) == 0
    )
    report = check_sealed(database, DestinationRows(box))
    unreadable = [(destination_id, key_id) for destination_id, key_id, opened in report if opened is None]
    if not unreadable:
        return
    expected = sorted({key_id or "unknown" for _, key_id in unreadable})
    if len(unreadable) == len(report):
        raise ConfigurationError(
            f"the secret key does not open the secrets stored in this database: its {len(report)} "
            f"destination(s) were sealed with key {', '.join(expected)}, and this node has "
            f"{', '.join(box.key_ids)}. Give this node the key the other nodes use (AUDITRELAY_SECRET_KEY "
            "on every node; `auditrelay keys fingerprint` shows the fingerprint of the keys a node has)"
        )
    log = logging.getLogger("auditrelay.keys")
    for destination_id, key_id in unreadable:
        log.error(
            "destination %s cannot be delivered to: its secrets were sealed with key %s, which this "
            "node does not have (it has %s)",
            destination_id,
            key_id or "unknown",
            ", ".join(box.key_ids),
        )


def _keys_command(args: argparse.Namespace, settings: Settings) -> None:
    """`keys generate` prints a new key; `fingerprint` the configured keys' fingerprints;
    `rotate` re-seals every secret with the first key."""
    from auditrelay.security import SecretBox, fingerprint, generate_key, parse_keys

    if args.keys_command == "generate":
        print(generate_key())
        return
    if args.keys_command == "fingerprint":
        if settings.secret_key:
            keys = parse_keys(settings.secret_key)
        else:
            key_file = settings.data_dir / "secret.key"
            if not key_file.exists():
                sys.exit(
                    "auditrelay: no key: AUDITRELAY_SECRET_KEY is not set and there is no " + str(key_file)
                )
            keys = parse_keys(key_file.read_text())
        for number, key in enumerate(keys):
            print(f"{fingerprint(key)}  {'seals and opens' if number == 0 else 'opens'}")
        return
    from auditrelay.store import Database, DestinationRows, reseal_sealed, upgrade_to_head

    database = Database(settings)
    try:
        upgrade_to_head(database)
        box = SecretBox.from_settings(settings.secret_key, settings.data_dir)
        resealed, unreadable = reseal_sealed(database, DestinationRows(box))
    finally:
        database.dispose()
    print(f"re-sealed {resealed} destination(s) with key {box.primary_id}")
    if unreadable:
        sys.exit(
            f"auditrelay: {len(unreadable)} destination(s) could not be opened with any key given "
            f"({', '.join(unreadable)}); add the key that sealed them and run this again"
        )


def prepare_or_exit(settings: Settings) -> None:
    try:
        prepare(settings)
    except ConfigurationError as exc:
        sys.exit(f"auditrelay: {exc.detail}")


def _first_start_tokens(database: Database, data_dir: Path) -> None:
    """On the very first start, create one admin and one ingest token and show them once."""
    from auditrelay.store import issue_first_tokens

    tokens = issue_first_tokens(database)
    if tokens is None:
        return
    admin, ingest = tokens
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, value in (("admin.token", admin), ("ingest.token", ingest)):
        path = data_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chmod(path, 0o600)
    print(
        "\nauditrelay: first start, two API tokens were created. They are shown once here and saved\n"
        f"with mode 0600 under {data_dir.resolve()}:\n"
        f"  admin token  ({data_dir / 'admin.token'}):  {admin}\n"
        f"  ingest token ({data_dir / 'ingest.token'}): {ingest}\n",
        flush=True,
    )
