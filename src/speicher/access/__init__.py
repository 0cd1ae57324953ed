"""Users, groups, access grants and API tokens: the one permission model."""

from speicher.access.grants import GrantService
from speicher.access.groups import GroupService
from speicher.access.tokens import TokenService
from speicher.access.users import UserService

__all__ = ["GrantService", "GroupService", "TokenService", "UserService"]
