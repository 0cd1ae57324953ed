"""S3's error answers: an XML document with a code, a message, the resource and a request id,
and the HTTP status AWS gives for that code."""

from __future__ import annotations

import errno
from xml.sax.saxutils import escape

from speicher.files import FsError

# code -> HTTP status, as AWS answers (Amazon S3 API Reference, "Error responses")
STATUS = {
    "AccessDenied": 403,
    "AccessForbidden": 403,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketState": 409,
    "NoSuchObjectLockConfiguration": 404,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidObjectState": 403,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidURI": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchCORSConfiguration": 404,
    "InvalidTag": 400,
    "NoSuchKey": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchPublicAccessBlockConfiguration": 404,
    "NoSuchWebsiteConfiguration": 404,
    "ObjectLockConfigurationNotFoundError": 404,
    "OwnershipControlsNotFoundError": 404,
    "ReplicationConfigurationNotFoundError": 404,
    "ServerSideEncryptionConfigurationNotFoundError": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "PreconditionFailed": 412,
    "QuotaExceeded": 507,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """A refusal in S3's terms; ``status`` defaults to AWS's for ``code``."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS.get(code, 400)
        # headers the answer carries besides the usual (x-amz-delete-marker, x-amz-version-id)
        self.headers = headers or []


def document(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()


def from_fs(exc: FsError, key: str = "") -> S3Error:
    """A ShareFS refusal as S3 says it."""
    if exc.code in (errno.ENOENT, errno.ENOTDIR):
        return S3Error("NoSuchKey", "The specified key does not exist.")
    if exc.code in (errno.ENOSPC, errno.EDQUOT):
        return S3Error(
            "QuotaExceeded",
            "The bucket's quota or its pool is full; nothing was written.",
        )
    if exc.code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return S3Error("AccessDenied", "Access Denied")
    if exc.code in (errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY):
        return S3Error(
            "InvalidRequest",
            f"The key {key!r} clashes with a folder or a file of the bucket's share "
            "(a key cannot be both an object and a prefix of other objects' keys).",
            409,
        )
    if exc.code in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
        return S3Error(
            "KeyTooLongError" if exc.code == errno.ENAMETOOLONG else "InvalidArgument", exc.message
        )
    return S3Error("InternalError", "We encountered an internal error. Please try again.")
