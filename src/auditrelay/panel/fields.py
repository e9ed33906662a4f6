"""Where the services' refusals belong on a form: each `FieldError` next to the input it
names, in the service's own words; a refusal naming no field next to the input it is about.

Used by the Organizations, People and API tokens pages (`templates/_fields.html` renders
the messages and marks the inputs `aria-invalid`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from auditrelay.errors import AuditrelayError

#: `memberships[0].org` (the services' spelling) and `memberships.0.org` (pydantic's, as
#: `forms.validated` joins it) both name `memberships.org`.
_INDEX = re.compile(r"\[\d+\]|\.\d+(?=\.|$)")


def field_path(api_field: str) -> str:
    """An API field's path without its list indexes."""
    return _INDEX.sub("", api_field)


@dataclass
class FieldErrors:
    """Messages by input name; "" holds those that belong to the form as a whole."""

    by_input: dict[str, list[str]] = field(default_factory=dict)

    def add(self, input_name: str, message: str) -> None:
        self.by_input.setdefault(input_name, []).append(message)

    def place(self, error: AuditrelayError, inputs: Mapping[str, str], about: str = "") -> None:
        """`error`'s field errors at the inputs `inputs` maps their API fields to (the
        form's top when a field has no input); a refusal without field errors at `about`."""
        if not error.errors:
            self.add(about, error.detail)
            return
        for problem in error.errors:
            self.add(inputs.get(field_path(problem.field), ""), problem.message)

    def get(self, input_name: str) -> list[str]:
        return self.by_input.get(input_name, [])

    def __bool__(self) -> bool:
        return bool(self.by_input)
