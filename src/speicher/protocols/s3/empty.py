"""Bucket settings Speicher does not have, answered as S3 answers a bucket that has none of
them: many clients (Veeam, Terraform, mc, s3cmd, the consoles) read them before they work,
and a NotImplemented would stop them. Setting any of them stays NotImplemented."""

from __future__ import annotations

from xml.sax.saxutils import escape

from speicher.protocols.s3.errors import S3Error

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"

# subresource -> (the S3 error of "none set", its message) or the empty document's element
NONE_SET: dict[str, tuple[str, str]] = {
    "object-lock": (
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    ),
    "policy": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "policyStatus": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "lifecycle": ("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
    "encryption": (
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    "website": (
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration",
    ),
    "ownershipControls": (
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
    ),
    "publicAccessBlock": (
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    ),
    "replication": (
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    ),
}
EMPTY = {
    "logging": "BucketLoggingStatus",
    "notification": "NotificationConfiguration",
    "accelerate": "AccelerateConfiguration",
}


def answers(query: set[str]) -> bool:
    return bool(query & (NONE_SET.keys() | EMPTY.keys() | {"acl", "requestPayment"}))


def document(query: set[str], owner: str) -> bytes:
    """The answer to a GET of one of these settings; raises the "none set" S3Error."""
    for name, (code, message) in NONE_SET.items():
        if name in query:
            raise S3Error(code, message, 404)
    if "acl" in query:
        who = escape(owner)
        body = (
            f'<AccessControlPolicy xmlns="{XMLNS}"><Owner><ID>{who}</ID>'
            f"<DisplayName>{who}</DisplayName></Owner><AccessControlList><Grant>"
            '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:type="CanonicalUser"><ID>{who}</ID><DisplayName>{who}</DisplayName></Grantee>'
            "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
            "</AccessControlPolicy>"
        )
    elif "requestPayment" in query:
        body = (
            f'<RequestPaymentConfiguration xmlns="{XMLNS}"><Payer>BucketOwner</Payer>'
            "</RequestPaymentConfiguration>"
        )
    else:
        element = next(EMPTY[name] for name in EMPTY if name in query)
        body = f'<{element} xmlns="{XMLNS}"/>'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()
