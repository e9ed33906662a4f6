"""The Administration pages' pure helpers: where a refusal shows on a form, and the sealed
cookie that carries a new token's secret across its redirect."""

from __future__ import annotations

from cryptography.fernet import Fernet

from auditrelay.errors import Conflict, FieldError, ValidationError
from auditrelay.panel.fields import FieldErrors, field_path
from auditrelay.panel.one_shot import LIFETIME_SECONDS, NewSecret, seal, unseal
from auditrelay.security import SecretBox

INPUTS = {"email": "email", "memberships.org": "org", "role": "role"}


def test_field_paths_lose_their_indexes_in_both_spellings() -> None:
    assert field_path("memberships[0].org") == "memberships.org"
    assert field_path("memberships.12.role") == "memberships.role"
    assert field_path("email") == "email"


def test_each_field_error_goes_next_to_its_input_and_unknown_fields_to_the_top() -> None:
    errors = FieldErrors()
    errors.place(
        ValidationError(
            "two problems",
            [FieldError("memberships[1].org", "no organization is named 'x'"), FieldError("admin", "odd")],
        ),
        INPUTS,
        about="role",
    )
    assert errors.get("org") == ["no organization is named 'x'"]
    assert errors.get("") == ["odd"]
    assert errors.get("role") == []


def test_a_refusal_without_fields_goes_next_to_the_input_it_is_about() -> None:
    errors = FieldErrors()
    assert not errors
    errors.place(Conflict("a person with email 'a@b.c' exists already"), INPUTS, about="email")
    assert errors and errors.get("email") == ["a person with email 'a@b.c' exists already"]


BOX = SecretBox(Fernet.generate_key())
SECRET = NewSecret("ar_viewer_secret", "reporting", "created")


def test_the_sealed_secret_opens_for_its_session_while_fresh() -> None:
    sealed = seal(BOX, "session-1", SECRET, now=1000.0)
    assert "ar_viewer_secret" not in sealed
    assert unseal(BOX, "session-1", sealed, now=1000.0 + LIFETIME_SECONDS - 1) == SECRET


def test_the_sealed_secret_is_refused_to_another_session_late_or_tampered() -> None:
    sealed = seal(BOX, "session-1", SECRET, now=1000.0)
    assert unseal(BOX, "session-2", sealed, now=1000.0) is None
    assert unseal(BOX, "session-1", sealed, now=1000.0 + LIFETIME_SECONDS) is None
    assert unseal(BOX, "session-1", sealed[:-4] + "AAAA", now=1000.0) is None
    assert unseal(SecretBox(Fernet.generate_key()), "session-1", sealed, now=1000.0) is None
    assert unseal(BOX, "session-1", "not sealed at all é", now=1000.0) is None
