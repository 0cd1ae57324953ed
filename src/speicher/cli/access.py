"""``speicher user``, ``speicher group`` and ``speicher token``."""

from __future__ import annotations

import sys
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, table
from speicher.cli.storage import JsonOpt, YesOpt, require_yes

user_app = typer.Typer(help="Users (each is also a Unix account).", no_args_is_help=True)
group_app = typer.Typer(help="Groups of users.", no_args_is_help=True)
token_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
s3_key_app = typer.Typer(help="A user's S3 access keys.", no_args_is_help=True)
user_app.add_typer(s3_key_app, name="s3-key")

StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("no password on standard input", 2)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for a password; use --password-stdin", 2)
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _show_user(user: dict[str, Any]) -> None:
    details(
        [
            ("name", user["name"]),
            ("full name", user["full_name"] or "-"),
            ("email", user["email"] or "-"),
            ("admin", "yes" if user["admin"] else "no"),
            ("file access", "yes" if user["file_access"] else "no"),
            ("enabled", "yes" if user["enabled"] else "no"),
            ("uid", user["uid"]),
            ("unix account", user["unix_name"] or "-"),
            ("groups", ", ".join(user["groups"]) or "-"),
            ("created", user["created_at"]),
        ]
    )


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    name: str,
    password_stdin: StdinOpt = False,
    full_name: Annotated[str, typer.Option(help="The person's name.")] = "",
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    file_access: Annotated[
        bool | None,
        typer.Option(
            "--file-access/--no-file-access",
            help="A Unix account and SMB login, so shares can be granted (default: on, but "
            "off for admins).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user (the password is asked for, or read with --password-stdin)."""
    password = read_password(password_stdin)
    user = client(ctx).post(
        "/users",
        {
            "name": name,
            "password": password,
            "full_name": full_name,
            "email": email,
            "admin": admin,
            "file_access": file_access,
        },
    )
    if as_json:
        print_json(user)
    else:
        uid = f"uid {user['uid']}" if user["file_access"] else "no file access"
        console.print(f"user {user['name']} created ({uid})")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List users."""
    users = client(ctx).get("/users")
    if as_json:
        print_json(users)
        return
    table(
        users,
        [
            ("NAME", "name"),
            ("FULL NAME", "full_name"),
            ("UID", "uid"),
            ("ADMIN", "admin"),
            ("FILES", "file_access"),
            ("ENABLED", "enabled"),
            ("GROUPS", lambda u: ", ".join(u["groups"])),
        ],
        empty="no users",
    )


@user_app.command("show")
def user_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Show a user."""
    user = client(ctx).get(f"/users/{name}")
    if as_json:
        print_json(user)
    else:
        _show_user(user)


@user_app.command("update")
def user_update(
    ctx: typer.Context,
    name: str,
    full_name: Annotated[str | None, typer.Option(help="New full name.")] = None,
    email: Annotated[str | None, typer.Option(help="New e-mail address.")] = None,
    admin: Annotated[
        bool | None, typer.Option("--admin/--no-admin", help="Grant or take away admin rights.")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Allow or stop logins.")
    ] = None,
    file_access: Annotated[
        bool | None,
        typer.Option(
            "--file-access/--no-file-access",
            help="Give a Unix account and SMB login (then set the password again), or take "
            "them, the user's grants and group memberships away (files stay).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user."""
    user = client(ctx).patch(
        f"/users/{name}",
        {
            "full_name": full_name,
            "email": email,
            "admin": admin,
            "enabled": enabled,
            "file_access": file_access,
        },
    )
    if as_json:
        print_json(user)
    else:
        console.print(f"user {name} updated")


@user_app.command("passwd")
def user_passwd(ctx: typer.Context, name: str, password_stdin: StdinOpt = False) -> None:
    """Set a user's password."""
    client(ctx).put(f"/users/{name}/password", {"password": read_password(password_stdin)})
    console.print(f"password of {name} changed")


@user_app.command("delete")
def user_delete(ctx: typer.Context, name: str, yes: YesOpt = False) -> None:
    """Delete a user: their login, SMB access and grants go; their files stay, owned by
    their old uid (never given to anyone else)."""
    require_yes(
        yes,
        f"deleting user {name} removes their login, SMB access and grants "
        "(their files stay, owned by their old uid)",
    )
    client(ctx).delete(f"/users/{name}")
    console.print(f"user {name} deleted")


# an RSA key of 16384 bits is 2.8 KB as a line: anything far larger is not a public key
MAX_KEY_FILE = 65536


def _read_key(path: str) -> str:
    """The key text of FILE, or of standard input for ``-``."""
    if path == "-":
        if sys.stdin.isatty():
            raise CliError(
                "no key on standard input; give the .pub file (speicher user add-key NAME "
                "~/.ssh/id_ed25519.pub) or pipe it in",
                2,
            )
        text = sys.stdin.read(MAX_KEY_FILE + 1)
        where = "standard input"
    else:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_KEY_FILE + 1)
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError(f"{path} is not text; give the public key (.pub) file", 2) from None
        where = path
    if len(text) > MAX_KEY_FILE:
        raise CliError(f"{where} is larger than {MAX_KEY_FILE} bytes; it holds no public key", 2)
    if not text.strip():
        raise CliError(f"{where} is empty; give the public key (.pub) file", 2)
    return text


@user_app.command("add-key")
def user_add_key(
    ctx: typer.Context,
    name: str,
    file: Annotated[
        str, typer.Argument(help="The public key file (.pub), or - for standard input.")
    ] = "-",
    as_json: JsonOpt = False,
) -> None:
    """Add an SSH public key the user may log in with over SFTP (one key: the .pub file's
    line or an RFC 4716 block; read from standard input without FILE)."""
    key = client(ctx).post(f"/users/{name}/keys", {"key": _read_key(file)})
    if as_json:
        print_json(key)
        return
    comment = f", {key['comment']}" if key["comment"] else ""
    console.print(
        escape(f"key {key['fingerprint']} ({key['algorithm']}{comment}) added to {name}"),
        soft_wrap=True,
    )


def key_type(algorithm: str) -> str:
    """A key type as ``ssh-keygen -l`` names it (ED25519, RSA...), for tables."""
    if algorithm.startswith("ecdsa-sha2-nistp"):
        return "ECDSA-" + algorithm.removeprefix("ecdsa-sha2-nistp")
    short = {
        "ssh-ed25519": "ED25519",
        "ssh-ed448": "ED448",
        "ssh-rsa": "RSA",
        "sk-ssh-ed25519@openssh.com": "ED25519-SK",
        "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
    }
    return short.get(algorithm, algorithm)


@user_app.command("list-keys")
def user_list_keys(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """List a user's SSH public keys."""
    keys = client(ctx).get(f"/users/{name}/keys")
    if as_json:
        print_json(keys)
        return
    table(
        keys,
        [
            ("FINGERPRINT", "fingerprint"),
            ("TYPE", lambda k: key_type(k["algorithm"])),
            ("ADDED", lambda k: k["created_at"][:10]),
            ("COMMENT", lambda k: k["comment"] or "-"),
        ],
        empty=f"{name} has no SSH keys (speicher user add-key)",
        whole=("FINGERPRINT", "TYPE", "ADDED"),
    )


@user_app.command("remove-key")
def user_remove_key(ctx: typer.Context, name: str, fingerprint: str) -> None:
    """Remove one of a user's SSH keys by its fingerprint (SHA256:..., as list-keys shows)."""
    client(ctx).delete(f"/users/{name}/keys/{quote(fingerprint, safe='')}")
    console.print(f"key {escape(fingerprint)} removed from {name}", soft_wrap=True)


@s3_key_app.command("create")
def s3_key_create(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Make an S3 access key for a user; its secret is shown only now. Requests signed with it
    act as the user, with the user's grants."""
    key = client(ctx).post(f"/users/{name}/s3-keys", None)
    if as_json:
        print_json(key)
        return
    console.print(
        f"S3 key made for {escape(key['user'])}. Store the secret now; it is not shown again:",
        soft_wrap=True,
    )
    sys.stdout.write(f"access key: {key['access_key']}\nsecret key: {key['secret']}\n")


@s3_key_app.command("list")
def s3_key_list(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """List a user's S3 access keys (their secrets are never shown again)."""
    keys = client(ctx).get(f"/users/{name}/s3-keys")
    if as_json:
        print_json(keys)
        return
    table(
        keys,
        [("ACCESS KEY", "access_key"), ("CREATED", lambda k: k["created_at"][:19])],
        empty=f"{name} has no S3 keys (speicher user s3-key create)",
    )


@s3_key_app.command("delete")
def s3_key_delete(ctx: typer.Context, name: str, access_key: str) -> None:
    """Delete one of a user's S3 access keys; requests signed with it are refused at once."""
    client(ctx).delete(f"/users/{name}/s3-keys/{quote(access_key.strip(), safe='')}")
    console.print(f"S3 key {escape(access_key.strip())} of {name} deleted", soft_wrap=True)


@group_app.command("create")
def group_create(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a group."""
    group = client(ctx).post("/groups", {"name": name, "description": description})
    if as_json:
        print_json(group)
    else:
        console.print(f"group {group['name']} created (gid {group['gid']})")


@group_app.command("list")
def group_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List groups."""
    groups = client(ctx).get("/groups")
    if as_json:
        print_json(groups)
        return
    table(
        groups,
        [
            ("NAME", "name"),
            ("GID", "gid"),
            ("DESCRIPTION", "description"),
            ("MEMBERS", lambda g: ", ".join(g["members"])),
        ],
        empty="no groups",
    )


@group_app.command("show")
def group_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Show a group and its members."""
    group = client(ctx).get(f"/groups/{name}")
    if as_json:
        print_json(group)
        return
    details(
        [
            ("name", group["name"]),
            ("gid", group["gid"]),
            ("unix group", group["unix_name"]),
            ("description", group["description"] or "-"),
            ("members", ", ".join(group["members"]) or "-"),
        ]
    )


@group_app.command("delete")
def group_delete(ctx: typer.Context, name: str, yes: YesOpt = False) -> None:
    """Delete a group (its grants go with it; its members and files stay)."""
    require_yes(yes, f"deleting group {name} removes its grants (its members and their files stay)")
    client(ctx).delete(f"/groups/{name}")
    console.print(f"group {name} deleted")


@group_app.command("add-member")
def group_add_member(ctx: typer.Context, group: str, user: str) -> None:
    """Add a user to a group."""
    client(ctx).put(f"/groups/{group}/members/{user}")
    console.print(f"{user} added to {group}")


@group_app.command("remove-member")
def group_remove_member(ctx: typer.Context, group: str, user: str) -> None:
    """Remove a user from a group."""
    client(ctx).delete(f"/groups/{group}/members/{user}")
    console.print(f"{user} removed from {group}")


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:16] + " UTC" if value else "-"


def _expires(token: dict[str, Any]) -> str:
    if token["expired"]:
        return "expired"
    return _when(token["expires_at"])[:16] if token["expires_at"] else "never"


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str,
    expires_days: Annotated[
        int | None, typer.Option(help="It stops working after this many days.")
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option(
            help="It stops working at this time (UTC), e.g. 2027-01-31 or 2027-01-31T18:00."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an admin API token; it is shown only now. Without an expiry it works until it is
    deleted."""
    body: dict[str, Any] = {"name": name}
    if expires_days is not None:
        body["expires_days"] = expires_days
    if expires_at is not None:
        body["expires_at"] = expires_at
    token = client(ctx).post("/tokens", body)
    if as_json:
        print_json(token)
        return
    until = f", valid until {_when(token['expires_at'])}" if token["expires_at"] else ""
    console.print(f"token {name} created{until}. Store it now; it is not shown again:")
    sys.stdout.write(token["token"] + "\n")


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List API tokens (never their secrets): who created them and when they expire."""
    tokens = client(ctx).get("/tokens")
    if as_json:
        print_json(tokens)
        return
    table(
        tokens,
        [
            ("NAME", "name"),
            ("KEY", "key"),
            ("CREATED BY", lambda t: t["created_by"] or "-"),
            ("CREATED", lambda t: t["created_at"][:10]),
            ("EXPIRES (UTC)", _expires),
            ("LAST USED", lambda t: (t["last_used_at"] or "-")[:10]),
        ],
        empty="no tokens",
    )


@token_app.command("delete")
def token_delete(ctx: typer.Context, name: str) -> None:
    """Delete an API token; programs using it lose access at once."""
    client(ctx).delete(f"/tokens/{name}")
    console.print(f"token {name} deleted")
