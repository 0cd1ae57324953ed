"""Shapes of users, groups, grants and tokens in the API and the CLI's ``--json``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

import email_validator
from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from speicher.validation import Name, Request


def _email(value: str) -> str:
    """An e-mail address as email-validator normalises it, or empty. Syntax only (no DNS
    look-up): a local part and a domain with a dot, no display name, quotes or IP literal."""
    if not value:
        return value
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise PydanticCustomError(
            "email", "is not an e-mail address: {why}", {"why": str(exc)}
        ) from None


EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_email)]


class UserCreate(Request):
    name: Name = Field(
        description="Login name: letters (stored in lower case), digits, `_`, `-` and `.`."
    )
    password: str = Field(description="At least 8 characters.", repr=False)
    full_name: str = Field("", max_length=128, description="The person's name.")
    email: EmailAddress = Field("", description="E-mail address for notices, or empty.")
    admin: bool = Field(False, description="May administer Speicher (API, CLI, web console).")
    file_access: bool | None = Field(
        None,
        description="Has a Unix account and an SMB password, so shares can be granted to the "
        "user. Default: yes for ordinary users, no for admins (an admin's password then never "
        "becomes an SMB password).",
    )


class UserUpdate(Request):
    full_name: str | None = Field(None, max_length=128, description="New full name.")
    email: EmailAddress | None = Field(None, description="New e-mail address; empty for none.")
    admin: bool | None = Field(None, description="Grant or take away admin rights.")
    enabled: bool | None = Field(None, description="A disabled user cannot log in anywhere.")
    file_access: bool | None = Field(
        None,
        description="Turn file access on (a Unix account; set the password afterwards for SMB) "
        "or off (the account, SMB login, grants and group memberships go; files stay).",
    )


class PasswordChange(Request):
    password: str = Field(description="The new password, at least 8 characters.", repr=False)


class UserInfo(BaseModel):
    """A Speicher user; also a Unix account with a stable uid."""

    name: str = Field(description="Login name.")
    uid: int | None = Field(
        description="Unix user id; files the user writes are owned by it. Null for a user who "
        "never had file access."
    )
    unix_name: str = Field(description="Name of the Unix account.")
    full_name: str = Field(description="The person's name.")
    email: str = Field(description="E-mail address.")
    admin: bool = Field(description="Whether the user is an administrator.")
    file_access: bool = Field(
        description="Whether the user has a Unix account and SMB login, so shares can be granted."
    )
    enabled: bool = Field(description="Whether the user may log in.")
    groups: list[str] = Field(description="Groups the user belongs to.")
    created_at: dt.datetime = Field(description="When the user was created (UTC).")


class KeyAdd(Request):
    """One SSH public key for a user's SFTP logins."""

    # RFC 4716 keys span several lines; every other control character is refused, and the
    # key's parser (asyncssh) is the check of the rest
    multiline: ClassVar[frozenset[str]] = frozenset({"key"})

    key: str = Field(
        max_length=16384,
        description="One public key: the line of an OpenSSH `.pub` file (`ssh-ed25519 AAAA... "
        "comment`; ed25519, ecdsa or rsa of at least 2048 bits) or an RFC 4716 block "
        "(`---- BEGIN SSH2 PUBLIC KEY ----`). No private key, no authorized_keys options.",
        examples=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... alice@laptop"],
    )


class KeyInfo(BaseModel):
    """An SSH public key a user may log in with over SFTP."""

    fingerprint: str = Field(
        description="SHA-256 fingerprint as `ssh-keygen -l` shows it: `SHA256:` and base64."
    )
    algorithm: str = Field(description="Key type, e.g. `ssh-ed25519` or `ecdsa-sha2-nistp256`.")
    comment: str = Field(description="The key's comment (often `user@host`); may be empty.")
    public_key: str = Field(description="The key in OpenSSH form, `<algorithm> <base64>`.")
    created_at: dt.datetime = Field(description="When it was added (UTC).")


class S3KeyInfo(BaseModel):
    """An S3 access key of a user (its secret is shown once, when it is made)."""

    access_key: str = Field(description="The access key id, `SPK` and 17 letters and digits.")
    created_at: dt.datetime = Field(description="When it was made (UTC).")


class S3KeyCreated(S3KeyInfo):
    """A new S3 access key with its secret: shown this once and never again."""

    secret: str = Field(description="The secret access key (40 characters). Keep it now.")
    user: str = Field(description="Whose key it is: requests signed with it act as this user.")


class GroupCreate(Request):
    name: Name = Field(
        description="Group name: letters (stored in lower case), digits, `_`, `-` and `.`."
    )
    description: str = Field("", max_length=256, description="Free text.")


class GroupInfo(BaseModel):
    """A group of users; also a Unix group with a stable gid."""

    name: str = Field(description="Group name.")
    gid: int = Field(description="Unix group id.")
    unix_name: str = Field(description="Name of the Unix group.")
    description: str = Field(description="Free text.")
    members: list[str] = Field(description="Names of its users.")
    created_at: dt.datetime = Field(description="When it was created (UTC).")


class GrantRequest(Request):
    user: Name | None = Field(None, description="The user to grant access to (or `group`).")
    group: Name | None = Field(None, description="The group to grant access to (or `user`).")
    access: Literal["rw", "ro"] = Field(description="`rw` read and write, `ro` read only.")


class TokenCreate(Request):
    name: str = Field(description="What the token is for, e.g. `monitoring`.")
    expires_days: int | None = Field(
        None, ge=1, le=36500, description="It stops working after this many days (or `expires_at`)."
    )
    expires_at: dt.datetime | None = Field(
        None, description="It stops working at this time (UTC if no zone is given)."
    )


class TokenInfo(BaseModel):
    name: str = Field(description="What the token is for.")
    key: str = Field(description="The token's public part; the secret is never shown again.")
    created_at: dt.datetime = Field(description="When it was created (UTC).")
    created_by: str = Field(
        description="Who created it: `root`, `user:NAME` or `token:NAME`; empty if unknown."
    )
    expires_at: dt.datetime | None = Field(description="When it stops working; null: never.")
    expired: bool = Field(description="Whether it has expired (it is refused).")
    last_used_at: dt.datetime | None = Field(description="When it was last used (UTC).")


class TokenCreated(TokenInfo):
    token: str = Field(description="The whole token. Shown once: store it now.")
