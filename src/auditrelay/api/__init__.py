"""HTTP API: ingest, destinations, the log browser; errors as problem JSON."""

from auditrelay.api.app import create_app

__all__ = ["create_app"]
