"""The admin panel under `/admin`: server-rendered pages (Jinja2) with a little vendored
JavaScript (htmx, `static/htmx`), calling the services in-process with the signed-in person
as the principal, so every change is the same audit event the API writes.

Mounted by `api.app`; it imports nothing of `api` (the layer above it): the session is
resolved through the app's own `Authenticator` (`app.state.auth`) at run time.
"""

from auditrelay.panel.routes import router
from auditrelay.panel.web import SESSION_COOKIE

__all__ = ["SESSION_COOKIE", "router"]
