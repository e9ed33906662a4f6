"""A real OpenID Connect provider for the SSO tests: panva's `oidc-provider` on Node, run by
`tests/support/oidc/provider.mjs` as a child process bound to 127.0.0.1.

    with OidcProvider(client, accounts) as idp:
        discovery = httpx.get(idp.discovery_url).json()
        ...  # the client under test builds an authorization URL
        callback = idp.sign_in(authorize_url, login="alice")  # .../callback?code=...&state=...

The npm packages are installed (`npm ci`, from the committed package-lock.json) on first use,
so plain `pytest` works in a fresh clone. Without node and npm the tests FAIL with
`OidcProviderError`: they are never skipped.

The provider releases `email` and `email_verified` for scope `email`, and `name` and
`auditrelay_roles` for scope `profile` (or `roles_scope`), in the ID token as well as at the
userinfo endpoint. Sign-in takes an account's sub (or email) and no password; consent is
granted at once. See provider.mjs for the details.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import httpx

#: provider.mjs, package.json and package-lock.json; node_modules is installed here.
PROVIDER_DIR = Path(__file__).resolve().parent / "oidc"
#: The oldest Node major that the pinned oidc-provider (8.x) supports.
MIN_NODE_MAJOR = 18
NPM_CI_TIMEOUT = 300.0

_FORM_ACTION = re.compile(r'<form\b[^>]*\baction="([^"]*)"', re.IGNORECASE)


class OidcProviderError(RuntimeError):
    """The provider could not be installed, started or driven as expected."""


@dataclass(frozen=True)
class OidcClient:
    """The one confidential client the provider knows (client_secret_basic by default)."""

    client_id: str = "auditrelay"
    client_secret: str = "auditrelay-test-secret"
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1:8080/auth/oidc/callback",)
    token_endpoint_auth_method: str = "client_secret_basic"

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }


@dataclass(frozen=True)
class OidcAccount:
    """An end-user: `sub` (also the login), and the claims released about them."""

    sub: str
    email: str
    name: str = ""
    email_verified: bool = True
    #: Released as the `auditrelay_roles` claim, e.g. ("admin",) or ("acme:owner",).
    roles: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name or self.sub,
            "auditrelay_roles": list(self.roles),
        }


def ensure_npm_packages(directory: Path = PROVIDER_DIR, timeout: float = NPM_CI_TIMEOUT) -> None:
    """Run `npm ci` in `directory` unless its node_modules matches package-lock.json.

    OidcProviderError when node or npm is missing, too old, or the install fails.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        raise OidcProviderError(
            f"{missing} not found on PATH: the SSO tests need Node.js >= {MIN_NODE_MAJOR} and npm "
            "to run the OpenID provider (.ci/run installs them with apt-get when missing)"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.match(r"v(\d+)\.", version.strip())
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        raise OidcProviderError(f"Node.js >= {MIN_NODE_MAJOR} is needed, found {version.strip()!r}")

    lock, installed = directory / "package-lock.json", directory / "node_modules" / ".package-lock.json"
    # One installer at a time (parallel pytest processes); the others wait, then find it done.
    with open(directory / ".npm-ci.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
            return
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise OidcProviderError(f"`npm ci` in {directory} did not finish within {timeout} s") from None
        if result.returncode != 0:
            raise OidcProviderError(
                f"`npm ci` in {directory} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )


@dataclass
class OidcProvider:
    """`node provider.mjs` with one client and some accounts; `start()` or `with` runs it.

    `port` 0 lets the OS choose; `issuer` is known once started.
    """

    client: OidcClient = field(default_factory=OidcClient)
    accounts: Sequence[OidcAccount] = ()
    port: int = 0
    roles_scope: str = "profile"
    start_timeout: float = 20.0
    http_timeout: float = 10.0
    issuer: str = ""
    process: subprocess.Popen[str] | None = None
    _log: IO[str] | None = field(default=None, repr=False)
    _final_log: str = field(default="", repr=False)
    _stdout_lines: list[str] = field(default_factory=list, repr=False)

    # -- what a client needs --

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def client_secret(self) -> str:
        return self.client.client_secret

    @property
    def redirect_uri(self) -> str:
        return self.client.redirect_uris[0]

    @property
    def discovery_url(self) -> str:
        return f"{self._started_issuer()}/.well-known/openid-configuration"

    # -- lifecycle --

    def start(self) -> OidcProvider:
        """Install the npm packages if needed, start the provider and wait for its READY
        line (at most `start_timeout` s); OidcProviderError if it exits or stays silent."""
        if self.process is not None:
            raise OidcProviderError("the provider is already started")
        ensure_npm_packages()
        config = {
            "client": self.client.to_json(),
            "accounts": [account.to_json() for account in self.accounts],
            "roles_scope": self.roles_scope,
        }
        env = {**os.environ, "OIDC_PROVIDER_CONFIG": json.dumps(config)}
        env.pop("OIDC_PROVIDER_PORT", None)
        self._log = tempfile.TemporaryFile("w+", prefix="oidc-provider-", suffix=".log")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            ["node", "provider.mjs", "--port", str(self.port), "--exit-with-stdin"],
            cwd=PROVIDER_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, args=(self.process, lines), daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OidcProviderError(f"no READY line within {self.start_timeout} s: {self.log()}")
                try:
                    line = lines.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    continue
                if line is None:
                    self.process.wait(5)
                    raise OidcProviderError(f"provider exited with {self.process.returncode}: {self.log()}")
                if line.startswith("READY "):
                    self.issuer = line.split(maxsplit=1)[1].strip()
                    return self
        except BaseException:
            self.stop()
            raise

    def _read_stdout(self, process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        # Reads to the end, so that the pipe never fills; the first READY line is the one used.
        assert process.stdout is not None
        for line in process.stdout:
            self._stdout_lines.append(line)
            lines.put(line)
        lines.put(None)

    def stop(self, timeout: float = 5.0) -> None:
        """End the provider (SIGTERM, then SIGKILL after `timeout` s). Safe to call twice."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if process is not None and process.stdin is not None:
            process.stdin.close()
        if self._log is not None:
            self._final_log = self.log()
            self._log.close()
            self._log = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log(self) -> str:
        """The provider's stderr (the last 5000 characters)."""
        if self._log is None:
            return self._final_log
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-5000:]

    # -- a user agent --

    def sign_in(self, authorize_url: str, login: str, *, max_steps: int = 10) -> str:
        """Play the browser: follow `authorize_url` through the provider's pages, sign in as
        `login` (an account's sub or email), let consent be granted, and return the URL the
        provider finally redirects to on one of the client's redirect_uris (with code and
        state, or error) WITHOUT fetching it.

        Each call is a new browser (fresh cookies). OidcProviderError if the provider answers
        anything else, e.g. an error page for a bad request or 401 for an unknown login.
        """
        issuer = self._started_issuer()
        url = authorize_url
        with httpx.Client(follow_redirects=False, timeout=self.http_timeout) as browser:
            for _ in range(max_steps):
                if self._is_redirect_uri(url):
                    return url
                if not url.startswith(issuer + "/"):
                    raise OidcProviderError(f"redirected off the provider, to {url}")
                response = browser.get(url)
                form = _FORM_ACTION.search(response.text) if response.status_code == 200 else None
                if form is not None:  # the login page: submit it
                    response = browser.post(urljoin(url, unescape(form.group(1))), data={"login": login})
                if response.is_redirect:
                    url = urljoin(str(response.url), response.headers["location"])
                    continue
                raise OidcProviderError(
                    f"{response.request.method} {response.url} answered {response.status_code}: "
                    f"{response.text[:2000]}\nprovider log: {self.log()}"
                )
        raise OidcProviderError(f"no redirect to the client after {max_steps} steps, last at {url}")

    def _is_redirect_uri(self, url: str) -> bool:
        parts = urlsplit(url)
        bare = parts._replace(query="", fragment="").geturl()
        return bare in self.client.redirect_uris

    def _started_issuer(self) -> str:
        if not self.issuer:
            raise OidcProviderError("the provider is not started")
        return self.issuer


@contextmanager
def oidc_provider(
    client: OidcClient | None = None, accounts: Sequence[OidcAccount] = (), **options: Any
) -> Iterator[OidcProvider]:
    """A started OidcProvider for a `with` block or a pytest fixture to yield from."""
    with OidcProvider(client or OidcClient(), accounts, **options) as provider:
        yield provider
