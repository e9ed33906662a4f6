"""The command line's light imports stay in step with what they stand for."""

from auditrelay.cli import ROLES
from auditrelay.security import Role


def test_the_roles_offered_by_the_cli_are_the_token_roles() -> None:
    assert tuple(role.value for role in Role) == ROLES
