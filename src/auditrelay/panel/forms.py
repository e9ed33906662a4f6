"""The destination form: what its fields hold, the API body they make, and where each error
the services give belongs on the page.

Field names: `kind`, `name`, `url`, `token`, `content_type`, `verification_token`, `org`
(admins), `event_types` and `namespaces` (one per line or comma-separated),
`headers-<n>-name|value|secret|stored` per header row, and `opt-<kind>-<option>` per option
of each kind (read from the kind's own options model, so a new option appears on its own);
the batching, delivery, TLS and signing sections are `panel.advanced`'s. `back` is where
**Save** and **Cancel** return: a panel path (`local_back`), else the list.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pydantic

from auditrelay.destinations import KINDS
from auditrelay.errors import FieldError, ValidationError
from auditrelay.panel.advanced import AdvancedSettings, section_of
from auditrelay.panel.web import HOME
from auditrelay.services import MAX_HEADERS

#: The kinds as the reference products name them, in the order the form offers them.
KIND_LABELS = {"splunk_hec": "Splunk", "sumo_logic": "Sumo Logic", "http": "Other (HTTP)"}
#: Kinds whose token field is shown: Splunk's HEC token; an HTTP endpoint's Authorization value.
TOKEN_KINDS = {"splunk_hec", "http"}
HEADER_ROW = re.compile(r"^headers-(\d+)-(name|value|secret|stored)$")


@dataclass
class HeaderRow:
    name: str = ""
    value: str = ""
    secret: bool = False
    #: A secret header already stored: an empty value keeps the stored one.
    stored: bool = False
    #: What is shown instead of a stored secret's value.
    masked: str = ""


@dataclass
class OptionField:
    name: str
    label: str
    choices: tuple[str, ...] = ()
    default: str = ""


def kind_choices() -> list[tuple[str, str]]:
    names = [k for k in KIND_LABELS if k in KINDS] + [k for k in KINDS if k not in KIND_LABELS]
    return [(k, KIND_LABELS.get(k, KINDS[k].title)) for k in names]


def option_fields(kind: str) -> list[OptionField]:
    model = KINDS[kind].options_model
    found = []
    for name, info in model.model_fields.items():
        choices: tuple[str, ...] = ()
        if typing.get_origin(info.annotation) is typing.Literal:
            choices = tuple(str(c) for c in typing.get_args(info.annotation))
        default = info.default if isinstance(info.default, str) else ""
        label = info.description or name.replace("_", " ").capitalize()
        found.append(OptionField(name, label, choices, default))
    return found


@dataclass
class DestinationForm:
    """The form's values (as typed, to show them again) and its errors by field."""

    kind: str = "splunk_hec"
    name: str = ""
    url: str = ""
    token: str = ""
    token_masked: str = ""
    content_type: str = ""
    verification_token: str = ""
    org: str = ""
    event_types: str = ""
    namespaces: str = ""
    headers: list[HeaderRow] = field(default_factory=list)
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Input name -> messages; "" for the form as a whole, "headers" for the table,
    #: "headers-<n>" for one row.
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: As shown when the form was opened (edit): sent back unchanged, it is left out.
    shown_url: str = ""
    settings: AdvancedSettings = field(default_factory=AdvancedSettings)
    back: str = HOME

    @classmethod
    def from_destination(cls, d: dict[str, Any]) -> DestinationForm:
        return cls(
            kind=d["kind"],
            name=d["name"],
            url=d["url"],
            shown_url=d["url"],
            token_masked=d.get("token") or "",
            content_type=d.get("content_type") or "",
            verification_token=d.get("verification_token") or "",
            org=d.get("org") or "",
            event_types="\n".join(d["event_types"]),
            namespaces="\n".join(d["namespaces"]),
            headers=[
                HeaderRow(
                    h["name"],
                    "" if h["secret"] else h["value"],
                    h["secret"],
                    stored=h["secret"],
                    masked=h["value"] if h["secret"] else "",
                )
                for h in d["headers"]
            ],
            options={d["kind"]: {k: "" if v is None else str(v) for k, v in d["options"].items()}},
            settings=AdvancedSettings.from_destination(d),
        )

    @classmethod
    def from_post(cls, form: dict[str, list[str]]) -> DestinationForm:
        def one(name: str) -> str:
            values = form.get(name)
            return values[0].strip() if values else ""

        rows: dict[int, HeaderRow] = {}
        for key, values in form.items():
            match = HEADER_ROW.match(key)
            if not match:
                continue
            row = rows.setdefault(int(match[1]), HeaderRow())
            value = values[0]
            if match[2] == "name":
                row.name = value.strip()
            elif match[2] == "value":
                row.value = value
            elif match[2] == "secret":
                row.secret = True
            else:
                row.stored = True
                row.masked = value
        kind = one("kind") or "http"
        options = {
            k: {o.name: one(f"opt-{k}-{o.name}") for o in option_fields(k)} for k in KINDS if k in KINDS
        }
        return cls(
            kind=kind,
            name=one("name"),
            url=one("url"),
            shown_url=one("shown_url"),
            token=one("token"),
            token_masked=one("token_masked"),
            content_type=one("content_type"),
            verification_token=one("verification_token"),
            org=one("org"),
            event_types=one("event_types"),
            namespaces=one("namespaces"),
            headers=[rows[i] for i in sorted(rows) if rows[i].name or rows[i].value or rows[i].stored],
            options=options,
            settings=AdvancedSettings.from_post(form),
            back=local_back(one("back")),
        )

    # -- the API body ------------------------------------------------------------------

    def _headers(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for row in self.headers:
            header: dict[str, Any] = {"name": row.name, "secret": row.secret}
            if row.value or not (row.stored and row.secret):
                header["value"] = row.value
            out.append(header)
        return out

    def _options(self) -> dict[str, str]:
        return {k: v for k, v in self.options.get(self.kind, {}).items() if v}

    def create_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "headers": self._headers(),
            "event_types": split_list(self.event_types),
            "namespaces": split_list(self.namespaces),
            "options": self._options(),
        }
        if self.token and self.kind in TOKEN_KINDS:
            body["token"] = self.token
        if self.content_type:
            body["content_type"] = self.content_type
        if self.verification_token:
            body["verification_token"] = self.verification_token
        if self.org:
            body["org"] = self.org
        body.update(self.settings.create_fields())
        return body

    def patch_body(self, current: dict[str, Any]) -> dict[str, Any]:
        """The PATCH an edit makes; `current` is the destination as the service shows it."""
        current_kind = current["kind"]
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "headers": self._headers(),
            "event_types": split_list(self.event_types),
            "namespaces": split_list(self.namespaces),
            "content_type": self.content_type or None,
            "options": self._options(),
        }
        if self.url != self.shown_url:  # shown masked: unchanged unless typed anew
            body["url"] = self.url
        if self.kind not in TOKEN_KINDS:
            if self.token_masked or current_kind in TOKEN_KINDS:
                body["token"] = None
        elif self.token:
            body["token"] = self.token
        body.update(self.settings.patch_fields(current))
        return body

    # -- errors --------------------------------------------------------------------------

    def add_errors(self, errors: list[FieldError], detail: str) -> None:
        placed = False
        for error in errors:
            where = self._input_of(error.field)
            self.errors.setdefault(where, []).append(error.message)
            placed = True
        if not placed:
            self.errors.setdefault("", []).append(detail)

    def _input_of(self, field_name: str) -> str:
        parts = field_name.split(".")
        top = parts[0]
        if top == "headers":
            if len(parts) == 1:
                return "headers"
            if parts[1].isdigit():
                return f"headers-{parts[1]}"
            named = ".".join(parts[1:])
            for index, row in enumerate(self.headers):
                if row.name.lower() == named.lower():
                    return f"headers-{index}"
            return "headers"
        if top in ("event_types", "namespaces"):
            return top
        if top == "options" and len(parts) > 1:
            return f"opt-{self.kind}-{parts[1]}"
        advanced = AdvancedSettings.input_of(parts)
        if advanced is not None:
            return advanced
        if top in ("name", "url", "token", "content_type", "verification_token", "org", "kind"):
            return top
        return ""

    @property
    def header_limit_reached(self) -> bool:
        return len(self.headers) >= MAX_HEADERS

    def section_open(self, section: str) -> bool:
        """A collapsed section opens when one of its fields has an error, or (signing)
        after **Generate**, so the person sees what is about to happen."""
        if section == "signing" and self.settings.signing_generate:
            return True
        return any(section_of(where) == section for where in self.errors if where)


def local_back(value: str | None) -> str:
    """Where **Save** returns: a path of this service's panel (`/admin/...`), nothing that
    could lead elsewhere (no scheme, host, `//`, backslash or control character); else the list."""
    if not value or not value.startswith("/admin/") or "\\" in value or value.startswith("//"):
        return HOME
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or len(value) > 2000:
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return value


def with_done(back: str, done: str) -> str:
    """`back` with `?done=<done>` (what the page there says happened), its fragment dropped."""
    parts = urlsplit(local_back(back))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "done"]
    return urlunsplit(("", "", parts.path, urlencode([*query, ("done", done)]), ""))


def split_list(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[\n,]", text) if part.strip()]


class FormInvalid(ValidationError):
    """Pydantic's refusal of a body, as the API words it (`api.problems`)."""

    status = 422
    title = "Validation failed"


def validated(model: type[pydantic.BaseModel], body: dict[str, Any]) -> Any:
    """`model(**body)`, or `FormInvalid` with one `FieldError` per problem, worded as the
    API's answer to the same body."""
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                message = "unknown field"
            errors.append(FieldError(".".join(loc), message))
        detail = "; ".join(f"{e.field or 'body'}: {e.message}" for e in errors)
        raise FormInvalid(detail, errors) from None
