"""Settings: defaults, then a TOML file (``--config``), then ``SPEICHER_*`` environment variables.

Every path and port is a setting, so several instances can run side by side (tests, trials).
Environment variables win over the file, so a test can override one value of a shared file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from speicher.errors import InvalidInput, Problem

CONFIG_ENV = "SPEICHER_CONFIG"


class Settings(BaseSettings):
    """Speicher's settings. Each field is also the environment variable ``SPEICHER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SPEICHER_", extra="forbid")

    state_dir: Path = Field(
        Path("/var/lib/speicher"),
        description="Database, virtual disks, sockets and keys live here.",
    )
    mount_root: Path = Field(
        Path("/srv/speicher"), description="Pools are mounted at <mount_root>/<pool>."
    )
    https_host: str = Field(
        "0.0.0.0",  # noqa: S104
        description="Address the REST API listens on over HTTPS (0.0.0.0: every IPv4 address, "
        ":: every address).",
    )
    https_port: int = Field(8443, ge=1, le=65535, description="TCP port of the API over HTTPS.")
    http_host: str = Field(
        "127.0.0.1",
        description="Address of the API over plain HTTP; only this machine unless the admin "
        "chooses another address (passwords and tokens then cross the network unencrypted).",
    )
    http_port: int = Field(
        8080, ge=0, le=65535, description="TCP port of the API over plain HTTP; 0 turns it off."
    )
    console_http: bool = Field(
        False,
        description="Serve the web console and file manager over plain HTTP too (a local "
        "trial); otherwise plain HTTP only redirects a browser to HTTPS.",
    )
    smb_port: int = Field(
        445, ge=1, le=65535, description="Default TCP port of smbd (the API can change it)."
    )
    sftp_host: str = Field(
        "0.0.0.0",  # noqa: S104
        description="Address the SFTP server listens on (0.0.0.0: every IPv4 address, :: every "
        "address).",
    )
    sftp_port: int = Field(
        2222, ge=0, le=65535, description="TCP port of the SFTP server; 0 turns SFTP off."
    )
    s3_host: str = Field(
        "0.0.0.0",  # noqa: S104
        description="Address the S3 endpoint listens on (0.0.0.0: every IPv4 address).",
    )
    s3_port: int = Field(
        9000, ge=0, le=65535, description="TCP port of the S3 endpoint (HTTP); 0 turns S3 off."
    )
    s3_workers: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 8),
        ge=0,
        le=64,
        description="Processes that serve S3 besides the daemon (one Python process uses one "
        "core at a time); 0: the daemon serves S3 itself. Default: one per CPU core, at most 8.",
    )
    s3_region: str = Field(
        "us-east-1",
        pattern=r"^[a-z0-9-]{1,32}$",
        description="The region S3 clients sign for and GetBucketLocation names.",
    )
    s3_domain: str = Field(
        "",
        pattern=r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)?$",
        description="Domain for virtual-hosted-style S3 requests (bucket.DOMAIN); empty: path "
        "style only.",
    )
    s3_tls: bool = Field(
        False, description="Serve S3 over HTTPS with the daemon's certificate instead of HTTP."
    )
    s3_bucket_pool: str = Field(
        "",
        description="The pool CreateBucket puts new buckets on; empty: the only pool, if there "
        "is one.",
    )
    s3_users_create_buckets: bool = Field(
        False,
        description="Whether users who are not admins may create (and delete their empty) "
        "buckets over S3.",
    )
    s3_abandoned_upload_days: float = Field(
        7,
        ge=0,
        le=36500,
        description="S3 multipart uploads neither completed nor aborted, and given no part for "
        "this many days, are removed with their parts (at start, then daily).",
    )
    s3_lock_check_seconds: float = Field(
        2,
        gt=0,
        le=86400,
        description="How often the daemon looks for S3 object versions whose retention ended "
        "to lift their immutable attribute (it reads only the due entries of each share's "
        "lock notes).",
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite in the state directory."
    )
    admin_password: str = Field(
        "", description="Password for the first admin; empty means a random one printed once."
    )
    account_prefix: str = Field(
        "",
        pattern=r"^[a-z0-9_-]{0,8}$",
        description="Prefix of the Unix account and group names of this instance's users "
        "(lets test instances share a machine without clashing).",
    )
    uid_base: int = Field(
        20000, ge=1000, le=2_000_000_000, description="First uid/gid given to Speicher users."
    )
    monitor_interval: float = Field(
        60.0, gt=0, description="Seconds between health checks of pools and disks."
    )
    max_lock_days: int = Field(
        3653,
        ge=1,
        le=36500,
        description="How far ahead a snapshot may be locked (days; 10 years by default). Set "
        "in the file or environment only, so an API token cannot raise it.",
    )
    scrub_speed_limit_mib: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Most a scrub reads per disk and second (MiB/s; 0: as fast as the disks "
        "go). A scrub of fast disks checksums with every core it gets; a limit keeps the box "
        "responsive while it runs.",
    )
    audit_files: bool = Field(
        True,
        description="Record every change to files (and reads where a share asks for it) in the "
        "audit log, over every protocol. Admin actions and logins are always recorded.",
    )
    audit_retention_months: int = Field(
        13,
        ge=1,
        le=120,
        description="Months the audit log keeps (whole months; the current one counts). "
        "Set in the file or environment only, so an API token cannot shorten it.",
    )
    metrics_allow: list[str] = Field(
        [],
        description="Client addresses (CIDR, e.g. 10.0.0.5/32) that may read /metrics without "
        "an API token (a Prometheus server); empty: only with an admin's API token.",
    )
    log_level: str = Field("INFO", description="Python log level of the daemon.")

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or network (CIDR)") from None
        return value

    @field_validator("state_dir", "mount_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @property
    def tls_dir(self) -> Path:
        """The API's certificate and key (the key is root-only)."""
        return self.state_dir / "tls"

    @property
    def socket_path(self) -> Path:
        """The daemon's local Unix socket; only root may connect."""
        return self.state_dir / "speicher.sock"

    @property
    def audit_dir(self) -> Path:
        """The audit log's month files and its intake socket (root only)."""
        return self.state_dir / "audit"

    @property
    def public_dir(self) -> Path:
        """Files ordinary users' processes must read (Samba's dfree command runs as them)."""
        return self.state_dir / "public"

    @property
    def disks_dir(self) -> Path:
        return self.state_dir / "disks"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'speicher.db'}"

    @property
    def primary_group(self) -> str:
        """The Unix group every Speicher user has as primary group."""
        return f"{self.account_prefix}speicher"


RENAMED = {
    "api_host": "https_host (HTTPS) or http_host (plain HTTP)",
    "api_port": "https_port (HTTPS) or http_port (plain HTTP)",
}


def _refuse_renamed(values: dict[str, Any]) -> None:
    """An old file must not silently fall back to defaults for the API's address."""
    old = [Problem(name, f"was renamed: use {RENAMED[name]}") for name in values if name in RENAMED]
    if old:
        raise InvalidInput(old)


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Load settings from an optional TOML file (or ``$SPEICHER_CONFIG``) and the environment."""
    path = config_file or os.environ.get(CONFIG_ENV) or None
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with Path(path).open("rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError:
            raise InvalidInput(field="config", reason=f"file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(field="config", reason=f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise InvalidInput(
                field="config", reason=f"cannot read {path}: {exc.strerror}"
            ) from None
        file_values = file_values.get("speicher", file_values)
        if not isinstance(file_values, dict):
            raise InvalidInput(field="config", reason=f"[speicher] in {path} must be a table")
        _refuse_renamed(file_values)
    env_names = {name for name in Settings.model_fields if f"SPEICHER_{name.upper()}" in os.environ}
    values = {k: v for k, v in file_values.items() if k not in env_names}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise InvalidInput(
            [Problem(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
