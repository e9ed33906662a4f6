"""Single sign-on's libraries load at the first sign-in, not with the app (most instances
have no single sign-on; every worker process would carry them)."""

from __future__ import annotations

import subprocess
import sys

SSO_LIBRARIES = ("authlib", "joserfc", "httpx2")


def loaded_after(statement: str) -> list[str]:
    probe = f"import sys; {statement}; print(sorted(m for m in {SSO_LIBRARIES!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(done.stdout.strip())  # a list of names, printed by the probe above


def test_the_app_loads_without_the_sso_libraries() -> None:
    assert loaded_after("import auditrelay.api.app") == []


def test_a_sign_in_loads_them() -> None:
    # The probe sees them once a sign-in needs its client (so the test above can fail).
    client = (
        "from auditrelay.services.sso import SsoService; from auditrelay.config import Settings; "
        "settings = Settings(oidc_issuer='https://idp.example', oidc_client_id='c', oidc_client_secret='s'); "
        "SsoService(None, settings, None)._client()"
    )
    assert "authlib" in loaded_after(client)
