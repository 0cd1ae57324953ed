"""CreateBucket and DeleteBucket: a bucket is a share with S3 on, so these make and delete
shares through the share service, with its rules (names, intent records, vetoes such as
locked snapshots).

- Admins may create buckets; other users only where ``s3_users_create_buckets`` allows it.
  A new bucket goes on ``s3_bucket_pool`` (or the only pool there is) and its creator gets an
  ``rw`` grant, so it is theirs at once.
- DeleteBucket deletes only an empty bucket (``BucketNotEmpty`` otherwise, as AWS) and only
  for who may create buckets and may write to this one.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from speicher import names
from speicher.access.models import GrantRequest
from speicher.errors import Conflict, InvalidInput, NotFound, SpeicherError
from speicher.files import FsError
from speicher.protocols.s3 import versions
from speicher.protocols.s3.errors import S3Error
from speicher.storage.models import ShareCreate

if TYPE_CHECKING:
    from speicher.services import Services

PROTOCOL = "s3"


def _may_manage(services: Services, user: str) -> bool:
    try:
        info = services.users.get(user)
    except NotFound:
        return False
    return info.admin or services.settings.s3_users_create_buckets


def _check_name(bucket: str) -> None:
    why = names.bucket_name(bucket) or names.share_name(bucket)
    if why is not None:
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.")


def _pool(services: Services) -> str:
    wanted = services.settings.s3_bucket_pool
    if wanted:
        return wanted
    pools = [p.name for p in services.pools.list() if p.state == "ready"]
    if len(pools) != 1:
        raise S3Error(
            "InvalidRequest",
            "This server has several pools (or none): the admin must set s3_bucket_pool to "
            "say which one gets new buckets.",
        )
    return pools[0]


def create(services: Services, user: str, bucket: str) -> None:
    _check_name(bucket)
    try:
        services.shares.get(bucket)
    except NotFound:
        pass
    else:
        try:
            services.files.open(user, bucket, PROTOCOL).close()
        except FsError:
            raise S3Error(
                "BucketAlreadyExists",
                "The requested bucket name is not available. Please select a different name "
                "and try again.",
            ) from None
        raise S3Error(
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
        )
    if not _may_manage(services, user):
        raise S3Error("AccessDenied", "Only admins may create buckets on this server.")
    try:
        services.shares.create(ShareCreate(name=bucket, pool=_pool(services), s3=True))
    except (InvalidInput, Conflict) as exc:
        raise S3Error("InvalidBucketName", exc.message) from None
    try:
        services.grants.grant(bucket, GrantRequest(user=user, access="rw"))
    except SpeicherError:
        services.shares.delete(bucket)  # a bucket nobody may use is no bucket
        raise


def delete(services: Services, user: str, bucket: str) -> None:
    try:
        view = services.files.open(user, bucket, PROTOCOL)
    except FsError as exc:
        if exc.code == errno.ENOENT:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist.") from None
        raise
    with view:
        if not view.writable or not _may_manage(services, user):
            raise S3Error("AccessDenied", "Access Denied")
        if view.list("/") or versions.has_versions(view):
            raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty")
    try:
        services.shares.delete(bucket)
    except Conflict as exc:  # a veto: locked snapshots, a pool that is not mounted
        raise S3Error("InvalidRequest", exc.message, 409) from None
