"""The destination form's collapsible settings: batching, delivery, TLS and signing (the
`batch`, `delivery`, `tls`, `signing_secret` and `signing_secret_previous` fields of the
API's destination body, `services.schemas`).

Field names: `batch-max_events|max_bytes|linger_ms`, `delivery-ordered` (a checkbox),
`delivery-max_in_flight`, `tls-ca_bundle`, `tls-client_certificate`, `tls-client_key`
(write-only: never put back into a page), `tls-min_version`, `tls-verify` (a checkbox whose
`off` turns the check off), `signing_secret`, `signing_secret_previous`, `signing-generate`
(`on` after **Generate**: the service makes the secret on save, shown once), `signing-off`
and `signing-previous-drop` (checkboxes). Empty fields keep what is there: the kind's
defaults on a new destination, the saved values on an edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditrelay.destinations import KINDS
from auditrelay.model import DeliverySettings, TlsSettings
from auditrelay.security import GENERATE

BATCH_FIELDS = ("max_events", "max_bytes", "linger_ms")
DELIVERY_FIELDS = ("ordered", "max_in_flight")
TLS_FIELDS = ("ca_bundle", "client_certificate", "client_key", "min_version", "verify")
TLS_VERSIONS = ("1.2", "1.3")
#: The `<details>` sections, by the error keys (input names) that open them.
SECTIONS = {"batch": "batch", "delivery": "delivery", "tls": "tls", "signing": "signing"}
DEFAULT_MAX_IN_FLIGHT = DeliverySettings().max_in_flight
DEFAULT_MIN_VERSION = TlsSettings().min_version


def batch_defaults() -> dict[str, dict[str, int]]:
    """Each batch setting's default by kind (the kind decides them), for the placeholders:
    `{"max_events": {"splunk_hec": 1000, ...}, ...}`."""
    return {f: {name: getattr(kind.default_batch, f) for name, kind in KINDS.items()} for f in BATCH_FIELDS}


def _pem(text: str) -> str:
    """A pasted PEM as the API keeps it: browsers send a textarea's lines with CRLF."""
    return text.replace("\r\n", "\n").strip()


@dataclass
class AdvancedSettings:
    """What the four sections hold, as typed (to show them again) or as saved (on edit)."""

    batch: dict[str, str] = field(default_factory=lambda: dict.fromkeys(BATCH_FIELDS, ""))
    ordered: bool = False
    max_in_flight: str = ""
    ca_bundle: str = ""
    client_certificate: str = ""
    #: As typed in this request only: a stored key is never shown, not even masked.
    client_key: str = ""
    client_key_stored: bool = False
    min_version: str = DEFAULT_MIN_VERSION
    verify: bool = True
    #: As typed; the stored one is shown masked only (`signing_masked`).
    signing_secret: str = ""
    signing_masked: str = ""
    signing_generate: bool = False
    signing_off: bool = False
    previous: str = ""
    previous_masked: str = ""
    previous_drop: bool = False

    @classmethod
    def from_destination(cls, d: dict[str, Any]) -> AdvancedSettings:
        batch, delivery, tls = d.get("batch") or {}, d.get("delivery") or {}, d.get("tls") or {}
        return cls(
            batch={f: "" if batch.get(f) is None else str(batch[f]) for f in BATCH_FIELDS},
            ordered=bool(delivery.get("ordered")),
            max_in_flight="" if delivery.get("max_in_flight") is None else str(delivery["max_in_flight"]),
            ca_bundle=tls.get("ca_bundle") or "",
            client_certificate=tls.get("client_certificate") or "",
            client_key_stored=tls.get("client_key") is not None,
            min_version=tls.get("min_version") or DEFAULT_MIN_VERSION,
            verify=tls.get("verify", True) is not False,
            signing_masked=d.get("signing_secret") or "",
            previous_masked=d.get("signing_secret_previous") or "",
        )

    @classmethod
    def from_post(cls, form: dict[str, list[str]]) -> AdvancedSettings:
        def one(name: str) -> str:
            values = form.get(name)
            return values[0].strip() if values else ""

        return cls(
            batch={f: one(f"batch-{f}") for f in BATCH_FIELDS},
            ordered=one("delivery-ordered") == "on",
            max_in_flight=one("delivery-max_in_flight"),
            ca_bundle=_pem(one("tls-ca_bundle")),
            client_certificate=_pem(one("tls-client_certificate")),
            client_key=_pem(one("tls-client_key")),
            client_key_stored=one("tls-client_key_stored") == "on",
            min_version=one("tls-min_version") or DEFAULT_MIN_VERSION,
            verify=one("tls-verify") != "off",
            signing_secret=one("signing_secret"),
            signing_masked=one("signing-masked"),
            signing_generate=one("signing-generate") == "on",
            signing_off=one("signing-off") == "on",
            previous=one("signing_secret_previous"),
            previous_masked=one("signing-previous-masked"),
            previous_drop=one("signing-previous-drop") == "on",
        )

    # -- the API body ------------------------------------------------------------------

    def create_fields(self) -> dict[str, Any]:
        """The settings of a new destination: only what differs from the defaults."""
        body: dict[str, Any] = {}
        batch = {f: v for f, v in self.batch.items() if v}
        if batch:
            body["batch"] = batch
        delivery: dict[str, Any] = {}
        if self.ordered:
            delivery["ordered"] = True
        if self.max_in_flight:
            delivery["max_in_flight"] = self.max_in_flight
        if delivery:
            body["delivery"] = delivery
        tls: dict[str, Any] = {
            name: value
            for name, value in (
                ("ca_bundle", self.ca_bundle),
                ("client_certificate", self.client_certificate),
                ("client_key", self.client_key),
            )
            if value
        }
        if self.min_version != DEFAULT_MIN_VERSION:
            tls["min_version"] = self.min_version
        if not self.verify:
            tls["verify"] = False
        if tls:
            body["tls"] = tls
        if self.signing_generate:
            body["signing_secret"] = GENERATE
        elif self.signing_secret:
            body["signing_secret"] = self.signing_secret
        if self.previous:
            body["signing_secret_previous"] = self.previous
        return body

    def patch_fields(self, current: dict[str, Any]) -> dict[str, Any]:
        """What an edit changes: the fields that differ from the saved ones (`current`, as
        the service shows it); an empty number or secret keeps what is saved."""
        body: dict[str, Any] = {}
        saved = AdvancedSettings.from_destination(current)
        batch = {f: v for f, v in self.batch.items() if v and v != saved.batch[f]}
        if batch:
            body["batch"] = batch
        delivery: dict[str, Any] = {}
        if self.ordered != saved.ordered:
            delivery["ordered"] = self.ordered
        if self.max_in_flight and self.max_in_flight != saved.max_in_flight:
            delivery["max_in_flight"] = self.max_in_flight
        if delivery:
            body["delivery"] = delivery
        tls: dict[str, Any] = {}
        for name in ("ca_bundle", "client_certificate"):
            typed, was = getattr(self, name), _pem(getattr(saved, name))
            if typed != was:
                tls[name] = typed or None  # emptied: back to the default (none)
        if self.client_key:
            tls["client_key"] = self.client_key
        if self.min_version != saved.min_version:
            tls["min_version"] = self.min_version
        if self.verify != saved.verify:
            tls["verify"] = self.verify
        if tls:
            body["tls"] = tls
        if self.signing_generate:
            body["signing_secret"] = GENERATE
        elif self.signing_secret:
            body["signing_secret"] = self.signing_secret
        elif self.signing_off and saved.signing_masked:
            body["signing_secret"] = None
        if self.previous:
            body["signing_secret_previous"] = self.previous
        elif self.previous_drop and saved.previous_masked:
            body["signing_secret_previous"] = None
        return body

    # -- what a closed section says ----------------------------------------------------

    def summaries(self) -> dict[str, str]:
        """One line per section, shown beside its title while it is closed."""
        batch = [
            f"{int(v):,} {unit}"
            for f, unit in zip(BATCH_FIELDS, ("events", "bytes", "ms"), strict=True)
            if (v := self.batch[f]).isdigit()
        ]
        delivery = ["ordered" if self.ordered else ""]
        if self.max_in_flight:
            delivery.append(f"up to {self.max_in_flight} in flight")
        tls = [
            "own CAs" if self.ca_bundle else "",
            "client certificate" if self.client_certificate else "",
            f"TLS {self.min_version}+" if self.min_version != DEFAULT_MIN_VERSION else "",
            "certificate NOT checked" if not self.verify else "",
        ]
        signing = "off"
        if self.signing_generate:
            signing = "a new secret on save"
        elif self.signing_masked or self.signing_secret:
            signing = "on, rotating" if self.previous_masked or self.previous else "on"
        return {
            "batch": " · ".join(batch) or "the kind's defaults",
            "delivery": ", ".join(p for p in delivery if p) or "the defaults",
            "tls": ", ".join(p for p in tls if p) or "the defaults (the system's CAs)",
            "signing": signing,
        }

    # -- errors --------------------------------------------------------------------------

    @staticmethod
    def input_of(parts: list[str]) -> str | None:
        """The input an error of the API's field `parts` (split at dots) goes next to: the
        section itself when the API names no field of it; None when not one of these."""
        top = parts[0]
        known = {"batch": BATCH_FIELDS, "delivery": DELIVERY_FIELDS, "tls": TLS_FIELDS}
        if top in known:
            return f"{top}-{parts[1]}" if len(parts) > 1 and parts[1] in known[top] else top
        if top in ("signing_secret", "signing_secret_previous"):
            return top
        return None


def section_of(input_name: str) -> str | None:
    """The section (`batch`, `delivery`, `tls`, `signing`) an input (or error key) is in."""
    if input_name.startswith("signing"):
        return "signing"
    head = input_name.split("-", 1)[0]
    return SECTIONS.get(head)
