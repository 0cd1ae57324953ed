"""``speicher disk``, ``speicher pool`` and ``speicher share``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, size, table, wait_for_job

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Print the job and return at once.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Confirm; nothing is deleted without it.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Wipe disks that hold a filesystem.")]

disk_app = typer.Typer(help="Disks and virtual disks.", no_args_is_help=True)
pool_app = typer.Typer(help="Pools: btrfs over one or more disks.", no_args_is_help=True)
share_app = typer.Typer(
    help="Shares: folders offered to users on every protocol.", no_args_is_help=True
)


def require_yes(yes: bool, consequence: str) -> None:
    """Refuse a destructive command without --yes, saying exactly what would be lost (the
    same words as the command's help)."""
    if not yes:
        raise CliError(f"{consequence}; add --yes to confirm", 2)


def run_job(ctx: typer.Context, job: dict[str, Any], no_wait: bool, as_json: bool = False) -> None:
    if no_wait:
        if as_json:
            print_json(job)
        else:
            console.print(f"started job {job['id']} ({job['kind']} {job['target']})")
        return
    done = wait_for_job(client(ctx), job, quiet=as_json)
    if as_json:
        print_json(done)


# -- disks ------------------------------------------------------------------------------------


@disk_app.command("list")
def disk_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List block devices and virtual disks."""
    disks = client(ctx).get("/disks")
    if as_json:
        print_json(disks)
        return
    table(
        disks,
        [
            ("NAME", "name"),
            ("KIND", "kind"),
            ("DEVICE", "device"),
            ("SIZE", lambda d: size(d["size"])),
            ("MODEL", "model"),
            ("SERIAL", "serial"),
            ("STATE", "state"),
            ("USED BY", "used_by"),
        ],
        empty="no disks",
    )


@disk_app.command("create-virtual")
def disk_create_virtual(
    ctx: typer.Context,
    name: str,
    size_: Annotated[str, typer.Option("--size", help="Size, e.g. 10G.")],
    as_json: JsonOpt = False,
) -> None:
    """Create a virtual disk: a sparse file on a loop device, for trials and tests."""
    disk = client(ctx).post("/disks/virtual", {"name": name, "size": size_})
    if as_json:
        print_json(disk)
    else:
        console.print(
            f"virtual disk {disk['name']} created ({size(disk['size'])}, {disk['device']})"
        )


@disk_app.command("delete-virtual")
def disk_delete_virtual(ctx: typer.Context, name: str) -> None:
    """Delete a virtual disk that no pool uses."""
    client(ctx).delete(f"/disks/virtual/{name}")
    console.print(f"virtual disk {name} deleted")


# -- pools ------------------------------------------------------------------------------------


@pool_app.command("create")
def pool_create(
    ctx: typer.Context,
    name: str,
    disks: Annotated[list[str], typer.Option("--disk", help="A disk (repeat for each).")],
    profile: Annotated[str, typer.Option(help="single, raid1, raid1c3, raid10, raid5, raid6.")],
    force: ForceOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a pool over disks."""
    job = client(ctx).post(
        "/pools", {"name": name, "profile": profile, "disks": disks, "force": force}
    )
    run_job(ctx, job, no_wait, as_json)


@pool_app.command("list")
def pool_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List pools."""
    pools = client(ctx).get("/pools")
    if as_json:
        print_json(pools)
        return
    table(
        pools,
        [
            ("NAME", "name"),
            ("PROFILE", "profile"),
            ("HEALTH", "health"),
            ("SIZE", lambda p: size(p["size"])),
            ("USED", lambda p: size(p["used"])),
            ("FREE", lambda p: size(p["free"])),
            ("DISKS", lambda p: len(p["disks"])),
            ("SHARES", lambda p: len(p["shares"])),
        ],
        empty="no pools",
    )


@pool_app.command("show")
def pool_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Show a pool: size, use, health and each disk's state."""
    pool = client(ctx).get(f"/pools/{name}")
    if as_json:
        print_json(pool)
        return
    details(
        [
            ("name", pool["name"]),
            ("health", pool["health"]),
            ("problem", pool.get("problem") or "-"),
            ("state", pool["state"]),
            ("profile", pool["profile"]),
            ("uuid", pool["uuid"]),
            ("mountpoint", pool["mountpoint"]),
            ("size", size(pool["size"])),
            ("used", size(pool["used"])),
            ("free", size(pool["free"])),
            ("shares", ", ".join(pool["shares"]) or "-"),
        ]
    )
    console.print()
    table(
        pool["disks"],
        [
            ("DISK", "disk"),
            ("DEVICE", "device"),
            ("DEVID", "devid"),
            ("SIZE", lambda d: size(d["size"])),
            ("USED", lambda d: size(d["used"])),
            ("STATE", "state"),
        ],
    )


@pool_app.command("add-disk")
def pool_add_disk(
    ctx: typer.Context, name: str, disk: str, force: ForceOpt = False, no_wait: NoWaitOpt = False
) -> None:
    """Add a disk to a pool."""
    run_job(ctx, client(ctx).post(f"/pools/{name}/disks", {"disk": disk, "force": force}), no_wait)


@pool_app.command("remove-disk")
def pool_remove_disk(ctx: typer.Context, name: str, disk: str, no_wait: NoWaitOpt = False) -> None:
    """Move a disk's data to the pool's other disks and take it out."""
    run_job(ctx, client(ctx).delete(f"/pools/{name}/disks/{disk}"), no_wait)


@pool_app.command("replace-disk")
def pool_replace_disk(
    ctx: typer.Context,
    name: str,
    old: str,
    new: str,
    force: ForceOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Rebuild a pool onto a new disk in place of an old (possibly missing) one."""
    job = client(ctx).post(f"/pools/{name}/replace", {"old": old, "new": new, "force": force})
    run_job(ctx, job, no_wait)


@pool_app.command("destroy")
def pool_destroy(ctx: typer.Context, name: str, yes: YesOpt = False) -> None:
    """Destroy a pool with all its shares and files."""
    if not yes:
        pool = client(ctx).get(f"/pools/{name}")
        shares = ", ".join(pool["shares"]) or "none"
        require_yes(
            yes,
            f"destroying pool {name} deletes its shares ({shares}) and all "
            f"{size(pool['used'])} of data on it for good",
        )
    client(ctx).delete(f"/pools/{name}")
    console.print(f"pool {name} destroyed")


# -- shares -----------------------------------------------------------------------------------


OnOff = Annotated[str | None, typer.Option("--smb", help="Offer over SMB: on or off.")]
WebdavOpt = Annotated[str | None, typer.Option("--webdav", help="Offer over WebDAV: on or off.")]
SftpOpt = Annotated[str | None, typer.Option("--sftp", help="Offer over SFTP: on or off.")]
S3Opt = Annotated[str | None, typer.Option("--s3", help="Offer as an S3 bucket: on or off.")]
AuditReadsOpt = Annotated[
    str | None,
    typer.Option("--audit-reads", help="Record reads in the audit log too: on or off."),
]
ReadOnlyOpt = Annotated[
    str | None,
    typer.Option(
        "--read-only", help="Nobody may change its files, whatever the grants: on or off."
    ),
]
SyncOpt = Annotated[
    str | None,
    typer.Option(
        "--sync",
        help="When WebDAV/SFTP writes reach the disk: 'always' (before the client is told) or "
        "'standard' (with the pool's next commit, within 30 s; faster for small files).",
    ),
]
Flag = bool | None


def switch(option: str, value: str | None) -> bool | None:
    """``on``/``off`` of an option such as ``--smb`` as a boolean; None when not given."""
    if value is not None and value not in ("on", "off"):
        raise CliError(f"{option}: must be 'on' or 'off'", 2)
    return None if value is None else value == "on"


def sync_mode(value: str) -> str:
    """``--sync``'s value, checked here so a typo gets the same one line as ``--smb``'s."""
    if value not in ("always", "standard"):
        raise CliError("--sync: must be 'always' or 'standard'", 2)
    return value


def smb_changes(
    smb: str | None,
    browseable: Flag,
    abe: Flag,
    recycle: Flag,
    recycle_days: int | None,
    mac: Flag,
    time_machine: Flag,
    time_machine_size: str | None,
    encrypt: Flag,
    guest: Flag,
) -> dict[str, Any] | None:
    """The SMB options given on the command line, for the API; None when none was."""
    changes = {
        "enabled": switch("--smb", smb),
        "browseable": browseable,
        "access_based_enumeration": abe,
        "recycle": recycle,
        "recycle_days": recycle_days,
        "mac": mac,
        "time_machine": time_machine,
        "time_machine_size": time_machine_size,
        "encrypt": encrypt,
        "guest": guest,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    return given or None


BrowseOpt = Annotated[
    Flag, typer.Option("--browseable/--hidden", help="SMB: listed when browsing.")
]
AbeOpt = Annotated[
    Flag, typer.Option("--abe/--no-abe", help="SMB: show users only what they may open.")
]
RecycleOpt = Annotated[Flag, typer.Option("--recycle/--no-recycle", help="SMB: recycle bin.")]
RecycleDaysOpt = Annotated[int | None, typer.Option(help="SMB: days deleted files are kept.")]
MacOpt = Annotated[Flag, typer.Option("--mac/--no-mac", help="SMB: macOS support (vfs_fruit).")]
TmOpt = Annotated[
    Flag, typer.Option("--time-machine/--no-time-machine", help="SMB: Time Machine target.")
]
TmSizeOpt = Annotated[str | None, typer.Option(help="SMB: Time Machine limit, e.g. 500G, or none.")]
EncryptOpt = Annotated[
    Flag, typer.Option("--encrypt/--no-encrypt", help="SMB: require SMB3 encryption.")
]
GuestOpt = Annotated[Flag, typer.Option("--guest/--no-guest", help="SMB: guests may read.")]


def _grants(share: dict[str, Any]) -> str:
    return ", ".join(f"{g['principal']}:{g['name']}={g['access']}" for g in share["grants"]) or "-"


@share_app.command("create")
def share_create(
    ctx: typer.Context,
    name: str,
    pool: Annotated[str, typer.Option(help="The pool to create it on.")],
    quota: Annotated[str | None, typer.Option(help="Size limit, e.g. 50G.")] = None,
    compression: Annotated[str, typer.Option(help="zstd, lzo, zlib, or empty.")] = "",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    smb: OnOff = None,
    browseable: BrowseOpt = None,
    abe: AbeOpt = None,
    recycle: RecycleOpt = None,
    recycle_days: RecycleDaysOpt = None,
    mac: MacOpt = None,
    time_machine: TmOpt = None,
    time_machine_size: TmSizeOpt = None,
    encrypt: EncryptOpt = None,
    guest: GuestOpt = None,
    webdav: WebdavOpt = None,
    sftp: SftpOpt = None,
    sync: SyncOpt = None,
    s3: S3Opt = None,
    audit_reads: AuditReadsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a share."""
    protocols: dict[str, object] = {
        "webdav": switch("--webdav", webdav),
        "sftp": switch("--sftp", sftp),
        "s3": switch("--s3", s3),
        "audit_reads": switch("--audit-reads", audit_reads),
    }
    if sync is not None:
        protocols["sync"] = sync_mode(sync)
    share = client(ctx).post(
        "/shares",
        {
            "name": name,
            "pool": pool,
            "quota": quota,
            "compression": compression,
            "description": description,
            "smb": smb_changes(
                smb,
                browseable,
                abe,
                recycle,
                recycle_days,
                mac,
                time_machine,
                time_machine_size,
                encrypt,
                guest,
            ),
            **protocols,
        },
    )
    if as_json:
        print_json(share)
    else:
        console.print(f"share {share['name']} created at {share['path']}")


@share_app.command("list")
def share_list(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option(help="Only this pool's shares.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List shares."""
    shares = client(ctx).get("/shares", params={"pool": pool} if pool else None)
    if as_json:
        print_json(shares)
        return
    table(
        shares,
        [
            ("NAME", "name"),
            ("POOL", "pool"),
            ("USED", lambda s: size(s["used"])),
            ("QUOTA", lambda s: size(s["quota"])),
            ("COMPRESSION", "compression"),
            ("ACCESS", _grants),
        ],
        empty="no shares",
    )


@share_app.command("show")
def share_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Show a share: usage against quota, and who may access it."""
    share = client(ctx).get(f"/shares/{name}")
    if as_json:
        print_json(share)
        return
    quota = share["quota"]
    use = (
        f"{size(share['used'])} of {size(quota)}" if quota else f"{size(share['used'])} (no quota)"
    )
    if quota:
        use += f" ({100 * share['used'] / quota:.0f}%)"
    details(
        [
            ("name", share["name"]),
            ("pool", share["pool"]),
            ("state", share["state"] + (f" ({share['problem']})" if share["problem"] else "")),
            ("path", share["path"]),
            ("used", use),
            ("compression", share["compression"] or "none"),
            ("description", share["description"] or "-"),
            ("smb", _smb_summary(share["smb"])),
            ("webdav", "on" if share["webdav"] else "off"),
            ("sftp", "on" if share["sftp"] else "off"),
            ("s3", "on" if share["s3"] else "off"),
            ("sync", share["sync"]),
            ("audit reads", "on" if share.get("audit_reads") else "off"),
            ("read only", "yes" if share.get("read_only") else "no"),
        ]
    )
    console.print()
    table(
        share["grants"],
        [("WHO", "principal"), ("NAME", "name"), ("ACCESS", "access")],
        empty="nobody has access yet (speicher share grant)",
    )


@share_app.command("update")
def share_update(
    ctx: typer.Context,
    name: str,
    quota: Annotated[str | None, typer.Option(help="New limit, e.g. 80G, or 'none'.")] = None,
    compression: Annotated[str | None, typer.Option(help="zstd, lzo, zlib, or ''.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    smb: OnOff = None,
    browseable: BrowseOpt = None,
    abe: AbeOpt = None,
    recycle: RecycleOpt = None,
    recycle_days: RecycleDaysOpt = None,
    mac: MacOpt = None,
    time_machine: TmOpt = None,
    time_machine_size: TmSizeOpt = None,
    encrypt: EncryptOpt = None,
    guest: GuestOpt = None,
    webdav: WebdavOpt = None,
    sftp: SftpOpt = None,
    sync: SyncOpt = None,
    s3: S3Opt = None,
    audit_reads: AuditReadsOpt = None,
    read_only: ReadOnlyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a share's quota, compression, description, SMB options, whether it is
    offered over WebDAV and SFTP, or when their writes reach the disk."""
    protocols: dict[str, object] = {
        "webdav": switch("--webdav", webdav),
        "sftp": switch("--sftp", sftp),
        "s3": switch("--s3", s3),
        "audit_reads": switch("--audit-reads", audit_reads),
        "read_only": switch("--read-only", read_only),
    }
    if sync is not None:
        protocols["sync"] = sync_mode(sync)
    changes = smb_changes(
        smb,
        browseable,
        abe,
        recycle,
        recycle_days,
        mac,
        time_machine,
        time_machine_size,
        encrypt,
        guest,
    )
    share = client(ctx).patch(
        f"/shares/{name}",
        {
            "quota": quota,
            "compression": compression,
            "description": description,
            "smb": changes,
            **protocols,
        },
    )
    if as_json:
        print_json(share)
    else:
        console.print(f"share {name} updated")


@share_app.command("delete")
def share_delete(ctx: typer.Context, name: str, yes: YesOpt = False) -> None:
    """Delete a share and every file in it."""
    if not yes:
        share = client(ctx).get(f"/shares/{name}")
        snaps = client(ctx).get(f"/shares/{name}/snapshots")
        require_yes(
            yes,
            f"deleting share {name} deletes its {size(share['used'])} of files and its "
            f"{len(snaps)} snapshot(s) for good",
        )
    client(ctx).delete(f"/shares/{name}")
    console.print(f"share {name} deleted")


def _principal(user: str | None, group: str | None) -> tuple[str, str]:
    if (user is None) == (group is None):
        raise CliError("give exactly one of --user and --group", 2)
    return ("user", user) if user else ("group", group)  # type: ignore[return-value]


@share_app.command("grant")
def share_grant(
    ctx: typer.Context,
    share: str,
    user: Annotated[str | None, typer.Option(help="A user.")] = None,
    group: Annotated[str | None, typer.Option(help="A group.")] = None,
    rw: Annotated[bool, typer.Option("--rw", help="Read and write.")] = False,
    ro: Annotated[bool, typer.Option("--ro", help="Read only.")] = False,
) -> None:
    """Give a user or group read-write or read-only access to a share."""
    kind, who = _principal(user, group)
    if rw == ro:
        raise CliError("give exactly one of --rw and --ro", 2)
    client(ctx).post(f"/shares/{share}/grants", {kind: who, "access": "rw" if rw else "ro"})
    console.print(f"{kind} {who} may now {'read and write' if rw else 'read'} {share}")


@share_app.command("revoke")
def share_revoke(
    ctx: typer.Context,
    share: str,
    user: Annotated[str | None, typer.Option(help="A user.")] = None,
    group: Annotated[str | None, typer.Option(help="A group.")] = None,
) -> None:
    """Take a user's or group's access to a share away."""
    kind, who = _principal(user, group)
    client(ctx).delete(f"/shares/{share}/grants/{kind}/{who}")
    console.print(f"{kind} {who} no longer has access to {share}")


def _smb_summary(smb: dict[str, Any]) -> str:
    if not smb["enabled"]:
        return "off"
    parts = ["on"]
    labels = {
        "access_based_enumeration": "abe",
        "mac": "mac",
        "time_machine": "time machine",
        "encrypt": "encryption required",
        "guest": "guest",
    }
    parts += [label for key, label in labels.items() if smb[key]]
    if not smb["browseable"]:
        parts.append("hidden")
    if smb["recycle"]:
        parts.append(f"recycle bin ({smb['recycle_days']} days)")
    return ", ".join(parts)
