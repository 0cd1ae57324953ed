"""A bucket's CORS rules and tags: Put/Get/DeleteBucketCors, Put/Get/DeleteBucketTagging,
the CORS preflight (``OPTIONS``, unsigned as browsers send it) and the CORS headers of
answers to requests with an ``Origin``.

Both live with the share in the database (``shares.s3_cors``, ``shares.s3_tags``, JSON),
like its other settings; users with write access to the bucket may change them, anyone who
may read it may read them. Rules are matched as S3 matches them: the first rule whose
origin (one ``*`` wildcard at most), method and requested headers all match.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeXml
from sqlalchemy import select

from speicher.db import Database, Share
from speicher.protocols.s3.errors import S3Error

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "DELETE"})
MAX_BODY = 64 * 1024
MAX_RULES = 100
MAX_TAGS = 50  # AWS's limit for bucket tags


@dataclass
class Rule:
    origins: list[str]
    methods: list[str]
    headers: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    max_age: int | None = None
    id: str = ""

    def matches(self, origin: str, method: str, asked: list[str]) -> bool:
        if method not in self.methods:
            return False
        if not any(_origin_matches(pattern, origin) for pattern in self.origins):
            return False
        allowed = [h.lower() for h in self.headers]
        return all(any(fnmatch.fnmatchcase(h, a) for a in allowed) for h in asked)


def _origin_matches(pattern: str, origin: str) -> bool:
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase(origin.lower(), pattern.lower().replace("[", "[[]"))


def _parse(body: bytes, root: str) -> Element:
    if len(body) > MAX_BODY:
        raise S3Error("MalformedXML", "The XML you provided was too large.")
    try:
        tree: Element = SafeXml.fromstring(body)
    except (SafeXml.ParseError, ValueError):
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema",
        ) from None
    if tree.tag.removeprefix(NS) != root:
        raise S3Error("MalformedXML", f"The XML you provided is not a {root}.")
    return tree


def _texts(element: Element, name: str) -> list[str]:
    return [(e.text or "").strip() for e in element if e.tag.removeprefix(NS) == name]


def parse_cors(body: bytes) -> list[Rule]:
    tree = _parse(body, "CORSConfiguration")
    rules = []
    for item in tree:
        if item.tag.removeprefix(NS) != "CORSRule":
            raise S3Error("MalformedXML", "A CORSConfiguration holds CORSRule elements only.")
        origins, methods = _texts(item, "AllowedOrigin"), _texts(item, "AllowedMethod")
        if not origins or not methods:
            raise S3Error(
                "MalformedXML", "Every CORSRule needs an AllowedOrigin and AllowedMethod."
            )
        for method in methods:
            if method not in METHODS:
                raise S3Error(
                    "InvalidRequest",
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {method}",
                )
        for origin in origins:
            if origin.count("*") > 1:
                raise S3Error(
                    "InvalidRequest",
                    f"AllowedOrigin '{origin}' can not have more than one wildcard.",
                )
        ages = _texts(item, "MaxAgeSeconds")
        try:
            max_age = int(ages[0]) if ages else None
        except ValueError:
            raise S3Error("MalformedXML", "MaxAgeSeconds must be a number.") from None
        ids = _texts(item, "ID")
        rules.append(
            Rule(
                origins=origins,
                methods=methods,
                headers=_texts(item, "AllowedHeader"),
                expose=_texts(item, "ExposeHeader"),
                max_age=max_age,
                id=ids[0] if ids else "",
            )
        )
    if not rules or len(rules) > MAX_RULES:
        raise S3Error("MalformedXML", f"A CORSConfiguration holds 1 to {MAX_RULES} rules.")
    return rules


def cors_xml(rules: list[Rule]) -> bytes:
    parts = [f'<CORSConfiguration xmlns="{XMLNS}">']
    for r in rules:
        parts.append("<CORSRule>")
        if r.id:
            parts.append(f"<ID>{escape(r.id)}</ID>")
        parts += [f"<AllowedHeader>{escape(h)}</AllowedHeader>" for h in r.headers]
        parts += [f"<AllowedMethod>{m}</AllowedMethod>" for m in r.methods]
        parts += [f"<AllowedOrigin>{escape(o)}</AllowedOrigin>" for o in r.origins]
        parts += [f"<ExposeHeader>{escape(h)}</ExposeHeader>" for h in r.expose]
        if r.max_age is not None:
            parts.append(f"<MaxAgeSeconds>{r.max_age}</MaxAgeSeconds>")
        parts.append("</CORSRule>")
    parts.append("</CORSConfiguration>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts)).encode()


def parse_tags(body: bytes) -> dict[str, str]:
    tree = _parse(body, "Tagging")
    tags: dict[str, str] = {}
    for tagset in tree:
        for tag in tagset:
            key, value = _texts(tag, "Key"), _texts(tag, "Value")
            if len(key) != 1 or len(value) > 1:
                raise S3Error("MalformedXML", "Every Tag needs one Key and at most one Value.")
            if key[0] in tags:
                raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
            if not 1 <= len(key[0]) <= 128 or len(value[0] if value else "") > 256:
                raise S3Error("InvalidTag", "The TagKey or TagValue you have provided is invalid")
            tags[key[0]] = value[0] if value else ""
    if len(tags) > MAX_TAGS:
        raise S3Error("InvalidTag", f"A bucket may have {MAX_TAGS} tags at most.")
    return tags


def tags_xml(tags: dict[str, str]) -> bytes:
    items = "".join(
        f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Tagging xmlns="{XMLNS}"><TagSet>{items}</TagSet></Tagging>'
    ).encode()


@dataclass
class _Row:
    cors: list[Rule]
    tags: dict[str, str]
    versioning: str  # "", "Enabled" or "Suspended"
    lock: dict[str, Any]  # the Object Lock configuration ({}: none)


class BucketConfig:
    """Reads and writes the bucket settings kept with the share (CORS rules, tags, the
    versioning state, the Object Lock configuration); reads are remembered until the shares
    table changes, so they cost no database round trip per request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, _Row] = {}
        self._generation = -1
        self._lock = threading.Lock()

    def _row(self, bucket: str) -> _Row:
        generation = self.db.generation_of(frozenset({"shares"}))
        with self._lock:
            if generation != self._generation:
                self._cache.clear()
                self._generation = generation
            if bucket in self._cache:
                return self._cache[bucket]
        with self.db.session() as s:
            row = s.execute(
                select(
                    Share.s3_cors, Share.s3_tags, Share.s3_versioning, Share.s3_object_lock
                ).where(Share.name == bucket)
            ).first()
        found = _Row([], {}, "", {})
        if row is not None:
            found.cors = [Rule(**r) for r in _load(row[0], [])]
            found.tags = {str(k): str(v) for k, v in _load(row[1], {}).items()}
            found.versioning = row[2] or ""
            lock = _load(row[3], {})
            found.lock = lock if isinstance(lock, dict) else {}
        with self._lock:
            if generation == self._generation:
                self._cache[bucket] = found
        return found

    def knows(self, bucket: str) -> bool:
        """Whether the bucket's settings are in memory (reading them needs no database)."""
        generation = self.db.generation_of(frozenset({"shares"}))
        with self._lock:
            return generation == self._generation and bucket in self._cache

    def versioning(self, bucket: str) -> str:
        return self._row(bucket).versioning

    def set_versioning(self, bucket: str, state: str) -> None:
        self._set(bucket, s3_versioning=state)

    def object_lock(self, bucket: str) -> dict[str, Any]:
        return self._row(bucket).lock

    def set_object_lock(self, bucket: str, config: dict[str, Any]) -> None:
        self._set(bucket, s3_object_lock=json.dumps(config) if config else "")

    def cors(self, bucket: str) -> list[Rule]:
        return self._row(bucket).cors

    def tags(self, bucket: str) -> dict[str, str]:
        return self._row(bucket).tags

    def set_cors(self, bucket: str, rules: list[Rule] | None) -> None:
        text = "" if rules is None else json.dumps([r.__dict__ for r in rules])
        self._set(bucket, s3_cors=text)

    def set_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        self._set(bucket, s3_tags="" if tags is None else json.dumps(tags))

    def _set(self, bucket: str, **columns: str) -> None:
        with self.db.session() as s:
            share = s.scalars(select(Share).where(Share.name == bucket)).first()
            if share is None:
                raise S3Error("NoSuchBucket", "The specified bucket does not exist.")
            for name, value in columns.items():
                setattr(share, name, value)


def _load(text: str, empty: Any) -> Any:
    if not text:
        return empty
    try:
        return json.loads(text)
    except ValueError:
        return empty


def preflight(
    rules: list[Rule], origin: str, method: str, asked: list[str]
) -> list[tuple[bytes, bytes]]:
    """The headers of a preflight answer; S3Error 403 when no rule allows the request."""
    for rule in rules:
        if rule.matches(origin, method, asked):
            headers = [
                (
                    b"access-control-allow-origin",
                    b"*" if rule.origins == ["*"] else origin.encode(),
                ),
                (b"access-control-allow-methods", ", ".join(rule.methods).encode()),
                (b"vary", b"Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
            ]
            if asked:
                headers.append((b"access-control-allow-headers", ", ".join(asked).encode()))
            if rule.expose:
                headers.append((b"access-control-expose-headers", ", ".join(rule.expose).encode()))
            if rule.max_age is not None:
                headers.append((b"access-control-max-age", str(rule.max_age).encode()))
            if rule.origins != ["*"]:
                headers.append((b"access-control-allow-credentials", b"true"))
            return headers
    raise S3Error("AccessForbidden", "CORSResponse: This CORS request is not allowed.", 403)


def response_headers(rules: list[Rule], origin: str, method: str) -> list[tuple[bytes, bytes]]:
    """CORS headers for an answer to a request with ``Origin`` (none if no rule matches)."""
    try:
        headers = preflight(rules, origin, method, [])
    except S3Error:
        return []
    return [h for h in headers if h[0] != b"access-control-max-age"]
