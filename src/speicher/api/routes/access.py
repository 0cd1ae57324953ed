"""Users, groups and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from speicher.access.models import (
    GroupCreate,
    GroupInfo,
    KeyAdd,
    KeyInfo,
    PasswordChange,
    S3KeyCreated,
    S3KeyInfo,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    UserCreate,
    UserInfo,
    UserUpdate,
)
from speicher.api.deps import ServicesDep
from speicher.validation import Name

router = APIRouter()


def _no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", tags=["users"], summary="List users")
def list_users(services: ServicesDep) -> list[UserInfo]:
    return services.users.list()


@router.post("/users", tags=["users"], status_code=201, summary="Create a user")
def create_user(req: UserCreate, services: ServicesDep) -> UserInfo:
    return services.users.create(req)


@router.get("/users/{name}", tags=["users"], summary="Show a user")
def get_user(name: Name, services: ServicesDep) -> UserInfo:
    return services.users.get(name)


@router.patch("/users/{name}", tags=["users"], summary="Change a user")
def update_user(name: Name, req: UserUpdate, services: ServicesDep) -> UserInfo:
    return services.users.update(name, req)


@router.put(
    "/users/{name}/password", tags=["users"], status_code=204, summary="Set a user's password"
)
def set_password(name: Name, req: PasswordChange, services: ServicesDep) -> Response:
    services.users.set_password(name, req.password)
    return _no_content()


@router.delete("/users/{name}", tags=["users"], status_code=204, summary="Delete a user")
def delete_user(name: Name, services: ServicesDep) -> Response:
    services.users.delete(name)
    return _no_content()


@router.get("/users/{name}/keys", tags=["users"], summary="List a user's SSH keys")
def list_keys(name: Name, services: ServicesDep) -> list[KeyInfo]:
    return services.keys.list(name)


@router.post(
    "/users/{name}/keys", tags=["users"], status_code=201, summary="Add an SSH key for SFTP"
)
def add_key(name: Name, req: KeyAdd, services: ServicesDep) -> KeyInfo:
    return services.keys.add(name, req.key)


# a fingerprint is `SHA256:` and base64, which holds `/`: the path converter takes it whole
@router.delete(
    "/users/{name}/keys/{fingerprint:path}",
    tags=["users"],
    status_code=204,
    summary="Remove an SSH key",
)
def remove_key(name: Name, fingerprint: str, services: ServicesDep) -> Response:
    services.keys.remove(name, fingerprint)
    return _no_content()


@router.get("/users/{name}/s3-keys", tags=["users"], summary="List a user's S3 access keys")
def list_s3_keys(name: Name, services: ServicesDep) -> list[S3KeyInfo]:
    return services.s3_keys.list(name)


@router.post(
    "/users/{name}/s3-keys",
    tags=["users"],
    status_code=201,
    summary="Make an S3 access key; its secret is in this answer only",
)
def create_s3_key(name: Name, services: ServicesDep) -> S3KeyCreated:
    return services.s3_keys.create(name)


@router.delete(
    "/users/{name}/s3-keys/{access_key}",
    tags=["users"],
    status_code=204,
    summary="Delete an S3 access key",
)
def delete_s3_key(name: Name, access_key: str, services: ServicesDep) -> Response:
    services.s3_keys.delete(name, access_key)
    return _no_content()


@router.get("/groups", tags=["groups"], summary="List groups")
def list_groups(services: ServicesDep) -> list[GroupInfo]:
    return services.groups.list()


@router.post("/groups", tags=["groups"], status_code=201, summary="Create a group")
def create_group(req: GroupCreate, services: ServicesDep) -> GroupInfo:
    return services.groups.create(req)


@router.get("/groups/{name}", tags=["groups"], summary="Show a group")
def get_group(name: Name, services: ServicesDep) -> GroupInfo:
    return services.groups.get(name)


@router.delete("/groups/{name}", tags=["groups"], status_code=204, summary="Delete a group")
def delete_group(name: Name, services: ServicesDep) -> Response:
    services.groups.delete(name)
    return _no_content()


@router.put("/groups/{name}/members/{user}", tags=["groups"], summary="Add a user to a group")
def add_member(name: Name, user: Name, services: ServicesDep) -> GroupInfo:
    return services.groups.add_member(name, user)


@router.delete(
    "/groups/{name}/members/{user}", tags=["groups"], summary="Remove a user from a group"
)
def remove_member(name: Name, user: Name, services: ServicesDep) -> GroupInfo:
    return services.groups.remove_member(name, user)


@router.get("/tokens", tags=["tokens"], summary="List API tokens")
def list_tokens(services: ServicesDep) -> list[TokenInfo]:
    return services.tokens.list()


@router.post(
    "/tokens", tags=["tokens"], status_code=201, summary="Create an API token (shown once)"
)
def create_token(req: TokenCreate, request: Request, services: ServicesDep) -> TokenCreated:
    return services.tokens.create(req, created_by=request.state.principal)


@router.delete("/tokens/{name}", tags=["tokens"], status_code=204, summary="Delete an API token")
def delete_token(name: str, services: ServicesDep) -> Response:
    services.tokens.delete(name)
    return _no_content()
