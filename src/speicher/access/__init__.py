"""Users, groups, access grants, SSH keys and API tokens: the one permission model."""

from speicher.access.grants import GrantService
from speicher.access.groups import GroupService
from speicher.access.keys import KeyService
from speicher.access.s3keys import S3KeyService
from speicher.access.tokens import TokenService
from speicher.access.users import UserService

__all__ = [
    "GrantService",
    "GroupService",
    "KeyService",
    "S3KeyService",
    "TokenService",
    "UserService",
]
