"""S3 Object Lock with boto3 against a running daemon: locked versions survive deletes over
S3 and in the file system (the immutable attribute), the share cannot be deleted while a
lock lasts, and the daemon lifts the attribute when retention ends. One daemon and world for
the module."""

from __future__ import annotations

import datetime as dt
import errno
import gc
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped]
import pytest
from test_s3_basics import client, code

from speicher.system import attrs
from speicher_testing import Daemon
from world import grant, make_pool, make_user

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    with warnings.catch_warnings():  # clients earlier modules left to the collector
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    make_pool(daemon)
    make_user(daemon, "alice")
    make_user(daemon, "boss", admin=True, file_access=True)
    keys = {}
    for user in ("alice", "boss"):
        r = daemon.api.post(f"/users/{user}/s3-keys")
        assert r.status_code == 201, r.text
        keys[user] = r.json()
    return {"keys": keys}


@pytest.fixture
def admin(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    s3 = client(daemon, world["keys"]["boss"])
    yield s3
    s3.close()


@pytest.fixture
def locked_bucket(daemon: Daemon, admin: Any, world: dict[str, Any]) -> dict[str, Any]:
    name = f"lock{os.urandom(3).hex()}"
    admin.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    grant(daemon, name, "alice", "rw")
    share = daemon.api.get(f"/shares/{name}").json()
    return {"name": name, "path": Path(share["path"])}


def _until(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _immutable(path: Path) -> bool:
    fd = os.open(path, attrs.OPEN_FLAGS)
    try:
        return attrs.immutable(fd)
    finally:
        os.close(fd)


def test_bucket_created_with_lock_is_versioned_and_has_a_configuration(
    admin: Any, locked_bucket: dict[str, Any]
) -> None:
    name = locked_bucket["name"]
    assert admin.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    got = admin.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    assert got["ObjectLockEnabled"] == "Enabled"
    admin.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    rule = admin.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    put = admin.put_object(Bucket=name, Key="defaulted", Body=b"x")
    head = admin.head_object(Bucket=name, Key="defaulted")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    admin.delete_object(
        Bucket=name, Key="defaulted", VersionId=put["VersionId"], BypassGovernanceRetention=True
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    assert code(exc) == ("InvalidBucketState", 409)


def test_lock_needs_versioning_on_an_existing_bucket(admin: Any) -> None:
    name = f"plain{os.urandom(3).hex()}"
    admin.create_bucket(Bucket=name)
    config = {"ObjectLockEnabled": "Enabled"}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=config)
    assert code(exc) == ("InvalidBucketState", 409)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.get_object_lock_configuration(Bucket=name)
    assert code(exc) == ("ObjectLockConfigurationNotFoundError", 404)
    admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    admin.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=config)
    assert admin.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"] == config


def test_a_compliance_locked_object_survives_every_delete(
    daemon: Daemon, admin: Any, locked_bucket: dict[str, Any]
) -> None:
    name, share = locked_bucket["name"], locked_bucket["path"]
    put = admin.put_object(
        Bucket=name,
        Key="vault/keep.bin",
        Body=b"precious",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=_until(4),
    )
    vid = put["VersionId"]
    path = share / "vault" / "keep.bin"
    assert _immutable(path)
    # over S3: deleting the version is refused; a plain DELETE only adds a marker
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.delete_object(Bucket=name, Key="vault/keep.bin", VersionId=vid)
    assert code(exc) == ("AccessDenied", 403)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.delete_object(
            Bucket=name, Key="vault/keep.bin", VersionId=vid, BypassGovernanceRetention=True
        )
    assert code(exc) == ("AccessDenied", 403)
    # COMPLIANCE cannot be shortened, even with the bypass
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.put_object_retention(
            Bucket=name,
            Key="vault/keep.bin",
            VersionId=vid,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": _until(1)},
            BypassGovernanceRetention=True,
        )
    assert code(exc) == ("AccessDenied", 403)
    # in the file system, as root (what SMB, WebDAV and SFTP come down to): EPERM
    with pytest.raises(PermissionError) as perm:
        os.unlink(path)
    assert perm.value.errno == errno.EPERM
    with pytest.raises(PermissionError):
        path.open("w")
    # the share cannot be deleted while the lock lasts
    r = daemon.api.delete(f"/shares/{name}")
    assert r.status_code in (403, 409), r.text
    # a new PUT over it keeps the locked version, locked, in the versions folder
    admin.put_object(Bucket=name, Key="vault/keep.bin", Body=b"newer")
    assert path.read_bytes() == b"newer" and not _immutable(path)
    old = admin.get_object(Bucket=name, Key="vault/keep.bin", VersionId=vid)
    assert old["Body"].read() == b"precious" and old["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.delete_object(Bucket=name, Key="vault/keep.bin", VersionId=vid)
    assert code(exc) == ("AccessDenied", 403)
    # retention ends: the daemon lifts the attribute, and the version may go
    time.sleep(7)
    admin.delete_object(Bucket=name, Key="vault/keep.bin", VersionId=vid)
    versions = admin.list_object_versions(Bucket=name, Prefix="vault/").get("Versions", [])
    assert [v["VersionId"] for v in versions if v["VersionId"] == vid] == []


def test_retention_expiry_lifts_the_attribute_in_the_share(
    admin: Any, locked_bucket: dict[str, Any]
) -> None:
    name, share = locked_bucket["name"], locked_bucket["path"]
    for key in ("short", "aging/soon/short"):
        admin.put_object(
            Bucket=name,
            Key=key,
            Body=b"x",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=_until(3),
        )
        assert _immutable(share / key)
    assert _sealed(share / "aging") and _sealed(share / "aging/soon")
    deadline = time.monotonic() + 15
    while _immutable(share / "aging/soon/short") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _immutable(share / "short") and not _immutable(share / "aging/soon/short")
    # the folders above it held nothing else locked: ordinary folders again
    assert not _sealed(share / "aging/soon") and not _sealed(share / "aging")
    (share / "short").write_bytes(b"changed over SMB")  # plain file again
    (share / "aging").rename(share / "aged")


def _sealed(path: Path) -> bool:
    fd = os.open(path, attrs.OPEN_FLAGS)
    try:
        return attrs.append_only(fd)
    finally:
        os.close(fd)


def test_governance_bypass_only_for_admins(
    daemon: Daemon, admin: Any, locked_bucket: dict[str, Any], world: dict[str, Any]
) -> None:
    name = locked_bucket["name"]
    alice = client(daemon, world["keys"]["alice"])
    try:
        put = alice.put_object(
            Bucket=name,
            Key="gov",
            Body=b"g",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=_until(3600),
        )
        vid = put["VersionId"]
        for s3 in (alice,):
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                s3.delete_object(
                    Bucket=name, Key="gov", VersionId=vid, BypassGovernanceRetention=True
                )
            assert code(exc) == ("AccessDenied", 403)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            admin.delete_object(Bucket=name, Key="gov", VersionId=vid)  # no bypass header
        assert code(exc) == ("AccessDenied", 403)
        got = admin.get_object_retention(Bucket=name, Key="gov", VersionId=vid)["Retention"]
        assert got["Mode"] == "GOVERNANCE"
        # legal hold: holds even after the bypass
        alice.put_object_legal_hold(
            Bucket=name, Key="gov", VersionId=vid, LegalHold={"Status": "ON"}
        )
        assert alice.get_object_legal_hold(Bucket=name, Key="gov")["LegalHold"]["Status"] == "ON"
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            admin.delete_object(
                Bucket=name, Key="gov", VersionId=vid, BypassGovernanceRetention=True
            )
        assert code(exc) == ("AccessDenied", 403)
        alice.put_object_legal_hold(
            Bucket=name, Key="gov", VersionId=vid, LegalHold={"Status": "OFF"}
        )
        admin.delete_object(Bucket=name, Key="gov", VersionId=vid, BypassGovernanceRetention=True)
    finally:
        alice.close()


def test_a_start_seals_the_folders_of_locked_objects_again(
    daemon: Daemon, admin: Any, locked_bucket: dict[str, Any]
) -> None:
    """The machine is the truth: a seal lifted behind the daemon's back (or a bucket locked
    before seals existed) is set again when the daemon starts. Last in the module: it
    restarts the daemon."""
    name, share = locked_bucket["name"], locked_bucket["path"]
    put = admin.put_object(
        Bucket=name, Key="kept/safe.bin", Body=b"y", ObjectLockLegalHoldStatus="ON"
    )
    folder_fd = os.open(share / "kept", attrs.OPEN_FLAGS)
    try:
        attrs.set_append_only(folder_fd, False)
    finally:
        os.close(folder_fd)
    assert not _sealed(share / "kept")
    daemon.stop()
    daemon.start()
    deadline = time.monotonic() + 15
    while not _sealed(share / "kept") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sealed(share / "kept")
    admin.put_object_legal_hold(
        Bucket=name, Key="kept/safe.bin", VersionId=put["VersionId"], LegalHold={"Status": "OFF"}
    )
    assert not _sealed(share / "kept")
