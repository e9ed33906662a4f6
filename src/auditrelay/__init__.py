"""auditrelay: durable, real-time streaming of audit events to security tools."""

__version__ = "0.1.0"
