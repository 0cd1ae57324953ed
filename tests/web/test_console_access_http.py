"""The console's access pages over HTTPS as a browser sends their forms: groups and their
members, a user's SSH keys and S3 keys, API tokens. A new S3 secret and a new API token are in
the answer to the form that made them (200), and never again; both work against the daemon
(boto3 against its S3 port, a Bearer request against its API) until they are deleted."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import httpx
import pytest
from web_helpers import browser, csrf_of, log_in

from speicher_testing import Daemon
from world import make_user, password

pytestmark = pytest.mark.system

GROUPS = "/console/groups/"
ANNA_KEYS = "/console/users/anna/keys/"
TOKENS = "/console/tokens/"


@pytest.fixture(scope="module")
def people(daemon: Daemon) -> None:
    """An admin who uses the console, and two users with file access."""
    make_user(daemon, "boss", admin=True)
    make_user(daemon, "anna", full_name="Anna A.")
    make_user(daemon, "otto")


def admin_client(daemon: Daemon) -> httpx.Client:
    client = browser(daemon)
    assert log_in(client, "boss", password("boss")).status_code == 303
    return client


def send(client: httpx.Client, path: str, **form: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf_of(client, path), **form})


def done(response: httpx.Response, note: str) -> None:
    """A form that worked: back to its page (303) with its note."""
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith(f"?done={note}"), response.headers["location"]


def at_field(response: httpx.Response, field_id: str, words: str) -> None:
    """A refused form: the page again (422) with the problem next to its field."""
    assert response.status_code == 422, response.text
    assert f'aria-describedby="err-{field_id}' in response.text, response.text
    problem = re.search(rf'id="err-{re.escape(field_id)}">([^<]*)<', response.text)
    assert problem is not None and words in problem.group(1), response.text


def shown(html: str, element_id: str) -> str:
    """The value of a read-only field the page shows a secret in."""
    found = re.search(rf'<textarea id="{re.escape(element_id)}"[^>]*>([^<]+)</textarea>', html)
    assert found is not None, html
    return found.group(1)


def test_groups_made_joined_left_and_deleted(daemon: Daemon, people: None) -> None:
    client = admin_client(daemon)
    page = client.get(GROUPS)
    assert page.status_code == 200 and "No group yet." in page.text
    done(send(client, GROUPS, action="create", name="Sales", description="The sales team"), "group")
    group = daemon.api.get("/groups/sales").json()
    assert group["description"] == "The sales team" and group["members"] == []
    at_field(send(client, GROUPS, action="create", name="sales"), "group-name", "already exists")
    at_field(send(client, GROUPS, action="create", name="Bad Name!"), "group-name", "characters")
    page = client.get(GROUPS)
    assert "The sales team" in page.text and "No share is granted to this group yet." in page.text
    assert "Delete group sales? No share is granted to it. Files stay." in page.text
    done(send(client, GROUPS, action="add-member", group="sales", user="anna"), "member-added")
    assert daemon.api.get("/groups/sales").json()["members"] == ["anna"]
    page = client.get(GROUPS + "?done=member-added")
    assert "The user is now a member of the group." in page.text
    assert 'name="user" value="anna"' in page.text  # its remove form
    # the service's refusals, at the user field of that group's form
    twice = send(client, GROUPS, action="add-member", group="sales", user="anna")
    at_field(twice, "member-1", "already a member")
    at_field(
        send(client, GROUPS, action="add-member", group="sales", user="nobody"),
        "member-1",
        "does not exist",
    )
    assert daemon.api.get("/groups/sales").json()["members"] == ["anna"]
    done(send(client, GROUPS, action="remove-member", group="sales", user="anna"), "member-removed")
    assert daemon.api.get("/groups/sales").json()["members"] == []
    done(send(client, GROUPS, action="delete", group="sales"), "group-deleted")
    assert daemon.api.get("/groups/sales").status_code == 404
    gone = send(client, GROUPS, action="delete", group="sales")
    assert gone.status_code == 422 and "does not exist" in gone.text


def test_the_pages_are_for_admins_with_the_forms_token(daemon: Daemon, people: None) -> None:
    otto = browser(daemon)
    assert log_in(otto, "otto", password("otto")).status_code == 303
    for path in (GROUPS, ANNA_KEYS, "/console/users/keys/", TOKENS):
        assert otto.get(path).status_code == 403, path
    token = csrf_of(otto)  # his own session's token, from the file manager
    refused = otto.post(TOKENS, data={"csrf": token, "action": "create", "name": "mine"})
    assert refused.status_code == 403 and "spk_" not in refused.text
    boss = admin_client(daemon)
    forged = boss.post(TOKENS, data={"csrf": "forged", "action": "create", "name": "forged"})
    assert forged.status_code == 403
    assert daemon.api.get("/tokens").json() == []
    german = browser(daemon, "de")
    assert log_in(german, "boss", password("boss")).status_code == 303
    page = german.get(TOKENS)
    assert "<h1>API-Tokens</h1>" in page.text and "Noch kein Token." in page.text
    logged_out = browser(daemon).get(GROUPS)
    assert logged_out.status_code == 303 and logged_out.headers["location"].startswith("/login")


def test_ssh_keys_added_refused_and_removed(daemon: Daemon, people: None, tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "anna@laptop", "-f", str(path)],
        check=True,
    )
    public = path.with_suffix(".pub").read_text()
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path.with_suffix(".pub"))],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    fingerprint = listed.stdout.split()[1]
    client = admin_client(daemon)
    index = client.get("/console/users/keys/")
    assert index.status_code == 200 and f'href="{ANNA_KEYS}"' in index.text
    chosen = client.get("/console/users/keys/", params={"user": "anna"})
    assert chosen.status_code == 303 and chosen.headers["location"] == ANNA_KEYS
    page = client.get(ANNA_KEYS)
    assert page.status_code == 200 and "No SSH key yet." in page.text
    # a textarea sends its lines with CR LF; the .pub file ends with a newline
    done(send(client, ANNA_KEYS, action="add-key", key=public.replace("\n", "\r\n")), "key-added")
    keys = daemon.api.get("/users/anna/keys").json()
    assert [(k["fingerprint"], k["comment"]) for k in keys] == [(fingerprint, "anna@laptop")]
    page = client.get(ANNA_KEYS + "?done=key-added")
    assert fingerprint in page.text and "anna@laptop" in page.text
    assert "The SSH key is added." in page.text
    garbage = send(client, ANNA_KEYS, action="add-key", key="ssh-ed25519 this-is-no-key at@all")
    at_field(garbage, "key", "not an SSH public key")
    assert 'aria-invalid="true"' in garbage.text
    private = send(client, ANNA_KEYS, action="add-key", key=path.read_text())
    at_field(private, "key", "private key")
    assert "PRIVATE KEY" not in private.text  # a refused key is not shown back
    at_field(send(client, ANNA_KEYS, action="add-key", key=public), "key", "already has key")
    assert len(daemon.api.get("/users/anna/keys").json()) == 1
    done(send(client, ANNA_KEYS, action="remove-key", fingerprint=fingerprint), "key-removed")
    assert daemon.api.get("/users/anna/keys").json() == []
    unknown = client.get("/console/users/nobody/keys/")
    assert unknown.status_code == 404 and "user &#39;nobody&#39; does not exist" in unknown.text


def s3(daemon: Daemon, access_key: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{daemon.s3_port}",
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}
        ),
    )


def s3_error(daemon: Daemon, access_key: str, secret: str) -> str:
    client = s3(daemon, access_key, secret)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.list_buckets()
    finally:
        client.close()
    return str(exc.value.response["Error"]["Code"])


def test_an_s3_key_and_its_secret_shown_once(daemon: Daemon, people: None) -> None:
    client = admin_client(daemon)
    made = send(client, ANNA_KEYS, action="create-s3-key")
    assert made.status_code == 200, made.text  # the page itself, not a redirect
    assert "location" not in made.headers and "set-cookie" not in made.headers
    assert made.headers["cache-control"] == "no-store"
    access_key, secret = shown(made.text, "made-access-key"), shown(made.text, "made-secret")
    assert re.fullmatch(r"SPK[A-Z0-9]{17}", access_key) and len(secret) == 40
    assert "This is the only time the secret is shown." in made.text
    listed = daemon.api.get("/users/anna/s3-keys")
    assert [k["access_key"] for k in listed.json()] == [access_key] and secret not in listed.text
    again = client.get(ANNA_KEYS)
    assert access_key in again.text and secret not in again.text
    assert "only time the secret" not in again.text
    anna = s3(daemon, access_key, secret)
    try:
        assert anna.list_buckets()["Buckets"] == []  # signed right
    finally:
        anna.close()
    assert s3_error(daemon, access_key, "x" * 40) == "SignatureDoesNotMatch"
    done(send(client, ANNA_KEYS, action="delete-s3-key", access_key=access_key), "s3-key-deleted")
    assert daemon.api.get("/users/anna/s3-keys").json() == []
    assert s3_error(daemon, access_key, secret) == "InvalidAccessKeyId"


def test_an_api_token_shown_once_used_and_deleted(daemon: Daemon, people: None) -> None:
    client = admin_client(daemon)
    made = send(client, TOKENS, action="create", name="monitoring", expires_days="30")
    assert made.status_code == 200, made.text
    assert "location" not in made.headers and "set-cookie" not in made.headers
    token = shown(made.text, "made-token")
    assert token.startswith("spk_") and "New token monitoring" in made.text
    created = daemon.api.get("/tokens").json()
    assert [t["name"] for t in created] == ["monitoring"] and created[0][
        "created_by"
    ] == "user:boss"
    assert created[0]["expires_at"] is not None and created[0]["last_used_at"] is None
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=daemon.url, timeout=30) as api:
        assert api.get("/api/v1/pools", headers=bearer).status_code == 200
        page = client.get(TOKENS)
        assert "monitoring" in page.text and token not in page.text
        assert token.split("_", 2)[2] not in page.text and ">never<" not in page.text  # used
        # the service's refusals, each at its field; nothing is made
        at_field(
            send(client, TOKENS, action="create", name="monitoring"), "token-name", "already exists"
        )
        at_field(
            send(client, TOKENS, action="create", name="x", expires_days="0"),
            "token-days",
            "greater than or equal to 1",
        )
        at_field(send(client, TOKENS, action="create", name="bad name!"), "token-name", "letters")
        assert len(daemon.api.get("/tokens").json()) == 1
        done(send(client, TOKENS, action="delete", name="monitoring"), "token-deleted")
        assert daemon.api.get("/tokens").json() == []
        assert api.get("/api/v1/pools", headers=bearer).status_code == 401
    page = client.get(TOKENS + "?done=token-deleted")
    assert "No token yet." in page.text and "the API refuses it from now on" in page.text
