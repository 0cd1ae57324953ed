"""The shapes in which disks, pools and shares are read and written (API, CLI ``--json``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from speicher.validation import Name, Request

Profile = Literal["single", "raid1", "raid1c3", "raid10", "raid5", "raid6"]
Compression = Literal["", "zstd", "lzo", "zlib"]
ShareState = Literal["creating", "ready", "deleting", "unavailable"]


class DiskInfo(BaseModel):
    """A disk Speicher can use: a block device of the machine or a virtual disk."""

    name: str = Field(
        description="How to name the disk in commands: a virtual disk's name or a "
        "device path such as `/dev/sdb`."
    )
    kind: Literal["physical", "virtual"] = Field(description="`physical` or `virtual`.")
    device: str = Field(description="Current block device, e.g. `/dev/loop3`; empty if detached.")
    size: int = Field(description="Size in bytes.")
    model: str = Field(description="Model as the device reports it; empty for virtual disks.")
    serial: str = Field(description="Serial number; empty when unknown.")
    used_by: str = Field(
        description="What uses the disk: `pool:NAME`, `mounted:/path`, "
        "`partitions`, `filesystem:TYPE`, or empty when free."
    )
    state: Literal["available", "in-use", "missing"] = Field(
        description="`available` (free to use), `in-use`, or `missing` (a virtual disk whose "
        "file is gone)."
    )
    backing_file: str = Field(description="A virtual disk's sparse file; empty otherwise.")


class VirtualDiskCreate(Request):
    name: str = Field(description="Name of the virtual disk (lower-case letters, digits, -, _).")
    size: str = Field(description="Size such as `10G` (binary units).", examples=["10G"])


class PoolCreate(Request):
    name: Name = Field(
        description="Pool name: 3-32 letters (stored in lower case), digits and `-`."
    )
    profile: Profile = Field(
        description="Redundancy: `single`, `raid1`, `raid1c3`, `raid10`, "
        "or `raid5`/`raid6` (Linux md RAID under btrfs)."
    )
    disks: list[str] = Field(description="Disks by name (virtual) or device path.")
    force: bool = Field(False, description="Wipe disks that hold an unknown filesystem.")


class PoolDiskChange(Request):
    disk: str = Field(description="The disk to add or remove.")
    force: bool = Field(False, description="Wipe a disk that holds an unknown filesystem.")


class PoolReplace(Request):
    old: str = Field(description="The disk to replace (it may be missing).")
    new: str = Field(description="The disk that takes its place.")
    force: bool = Field(False, description="Wipe a new disk that holds an unknown filesystem.")


class PoolDiskInfo(BaseModel):
    disk: str = Field(description="The disk's name (virtual) or device path.")
    device: str = Field(description="Current block device; empty when missing.")
    devid: int | None = Field(description="btrfs device id; null for md members.")
    size: int = Field(description="Bytes of this disk the pool may use.")
    used: int = Field(description="Bytes allocated on this disk.")
    state: Literal["online", "missing"] = Field(description="`online` or `missing`.")


class PoolInfo(BaseModel):
    """A pool: a btrfs filesystem over its disks."""

    name: str = Field(description="Pool name.")
    uuid: str = Field(description="Filesystem UUID; the pool is mounted by it.")
    profile: str = Field(description="Redundancy profile.")
    state: Literal["creating", "ready", "destroying"] = Field(
        description="`creating` while its job runs, then `ready`."
    )
    health: Literal["ok", "degraded", "unavailable"] = Field(
        description="`ok`; `degraded` when a disk is missing or failing but data is readable; "
        "`unavailable` when it cannot be mounted."
    )
    mountpoint: str = Field(description="Where it is mounted.")
    size: int = Field(description="Usable bytes (after redundancy).")
    used: int = Field(description="Bytes used.")
    free: int = Field(description="Bytes free for new data.")
    disks: list[PoolDiskInfo] = Field(description="The pool's disks and their state.")
    shares: list[str] = Field(description="Names of the shares on this pool.")
    problem: str = Field(
        "", description="Why the pool is degraded or unavailable, and what to do; empty if ok."
    )
    created_at: dt.datetime = Field(description="When it was created (UTC).")


class GrantInfo(BaseModel):
    principal: Literal["user", "group"] = Field(description="`user` or `group`.")
    name: str = Field(description="The user's or group's name.")
    access: Literal["rw", "ro"] = Field(description="`rw` (read and write) or `ro` (read only).")


class SmbOptions(BaseModel):
    """How a share is offered over SMB (Windows and Mac file sharing)."""

    enabled: bool = Field(description="Offered over SMB.")
    browseable: bool = Field(description="Listed when clients browse the server.")
    access_based_enumeration: bool = Field(
        description="Users see only the shares, files and folders they may open."
    )
    recycle: bool = Field(description="Deleted files go to the share's `#recycle` folder.")
    recycle_days: int = Field(description="Files in `#recycle` are purged after this many days.")
    mac: bool = Field(description="macOS support (vfs_fruit: Finder metadata, resource forks).")
    time_machine: bool = Field(description="Offered to Macs as a Time Machine target.")
    time_machine_size: int | None = Field(
        description="Largest size Time Machine may use, in bytes; null for no limit."
    )
    encrypt: bool = Field(description="Clients must use SMB3 encryption.")
    guest: bool = Field(description="Anyone may read without a password (guest access).")


class SmbOptionsUpdate(Request):
    """SMB options to change; fields left out (null) stay as they are."""

    enabled: bool | None = Field(None, description="Offer the share over SMB.")
    browseable: bool | None = Field(None, description="List it when clients browse.")
    access_based_enumeration: bool | None = Field(
        None, description="Show users only what they may open."
    )
    recycle: bool | None = Field(None, description="Keep deleted files in `#recycle`.")
    recycle_days: int | None = Field(None, ge=1, le=3650, description="Days before purging.")
    mac: bool | None = Field(None, description="macOS support (vfs_fruit).")
    time_machine: bool | None = Field(None, description="Offer as a Time Machine target.")
    time_machine_size: str | None = Field(
        None, description="Time Machine size limit such as `500G`, or `none`."
    )
    encrypt: bool | None = Field(None, description="Require SMB3 encryption.")
    guest: bool | None = Field(None, description="Allow guests to read without a password.")


WriteSync = Literal["always", "standard"]
SYNC_HELP = (
    "When files written over WebDAV, SFTP and the other Python protocols reach the disk: "
    "`always`, before the client is told the write succeeded; `standard`, with the pool's next "
    "commit (within 30 s; faster for many small files, but a power cut can lose the last "
    "seconds' new files). Replacing a file is atomic either way."
)

READ_ONLY_HELP = (
    "Nobody may change its files over any protocol, whatever their grants (ransomware's "
    "response can switch it on)."
)
AUDIT_READS_HELP = (
    "The audit log records every opening of a file for reading too, over every protocol "
    "(changes are always recorded)."
)


class ShareCreate(Request):
    name: Name = Field(
        description="Share name, the same on every protocol: 2-63 letters (stored in lower "
        "case), digits, `-` and `_`. Names of 3 or more characters without `_` can also be S3 "
        "buckets."
    )
    pool: Name = Field(description="The pool to put it on.")
    quota: str | None = Field(None, description="Size limit such as `50G`; null for none.")
    compression: Compression = Field("", description="`zstd`, `lzo`, `zlib`, or empty for none.")
    description: str = Field("", max_length=256, description="Free text for people.")
    smb: SmbOptionsUpdate | None = Field(None, description="SMB options; SMB is off if left out.")
    webdav: bool | None = Field(None, description="Offer the share over WebDAV; off if left out.")
    sftp: bool | None = Field(None, description="Offer the share over SFTP; off if left out.")
    sync: WriteSync | None = Field(None, description=SYNC_HELP + " `always` if left out.")
    audit_reads: bool | None = Field(None, description=AUDIT_READS_HELP + " Off if left out.")
    s3: bool | None = Field(None, description="Offer the share as an S3 bucket; off if left out.")


class ShareUpdate(Request):
    quota: str | None = Field(
        None,
        description="New size limit such as `50G`, or `none` to remove it; null leaves it as is.",
    )
    compression: Compression | None = Field(None, description="New compression; null leaves it.")
    description: str | None = Field(None, max_length=256, description="New description.")
    smb: SmbOptionsUpdate | None = Field(None, description="SMB options to change.")
    webdav: bool | None = Field(None, description="Offer the share over WebDAV; null leaves it.")
    sftp: bool | None = Field(None, description="Offer the share over SFTP; null leaves it.")
    sync: WriteSync | None = Field(None, description=SYNC_HELP + " Null leaves it.")
    audit_reads: bool | None = Field(None, description=AUDIT_READS_HELP + " Null leaves it.")
    read_only: bool | None = Field(None, description=READ_ONLY_HELP + " Null leaves it.")
    s3: bool | None = Field(None, description="Offer the share as an S3 bucket; null leaves it.")


class ShareInfo(BaseModel):
    """A share: a btrfs subvolume, offered under one name on every protocol."""

    name: str = Field(description="Share name.")
    pool: str = Field(description="The pool it lives on.")
    state: ShareState = Field(
        description="`ready`; `unavailable` when its pool is not mounted or its folder is "
        "gone (see `problem`); `creating`/`deleting` while that happens."
    )
    problem: str = Field("", description="Why the share is unavailable; empty when it is not.")
    path: str = Field(description="Its directory on the server.")
    quota: int | None = Field(description="Size limit in bytes; null for none.")
    used: int = Field(description="Bytes its files take (referenced by the subvolume).")
    compression: str = Field(description="Compression of new writes; empty for none.")
    description: str = Field(description="Free text.")
    grants: list[GrantInfo] = Field(description="Who may read or write.")
    smb: SmbOptions = Field(description="How it is offered over SMB.")
    webdav: bool = Field(description="Offered over WebDAV.")
    sftp: bool = Field(description="Offered over SFTP (users log in with their SSH keys).")
    sync: WriteSync = Field(description=SYNC_HELP)
    audit_reads: bool = Field(False, description=AUDIT_READS_HELP)
    read_only: bool = Field(False, description=READ_ONLY_HELP)
    s3: bool = Field(description="Offered as an S3 bucket of the same name.")
    snapshots_dir: str = Field(description="Where its snapshots live on the server.")
    created_at: dt.datetime = Field(description="When it was created (UTC).")
