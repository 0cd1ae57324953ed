"""smb.conf as a pure function of Speicher's model: ``smb_conf()`` builds the sections as a
dict (unit-tested with plain values), ``to_text()`` prints them."""

from __future__ import annotations

from dataclasses import dataclass, field

SNAPSHOT_FORMAT = "@GMT-%Y.%m.%d-%H.%M.%S"
RECYCLE_DIR = "#recycle"
INTERNAL_DIR = ".speicher"


@dataclass(frozen=True)
class SambaDirs:
    private: str
    lock: str
    state: str
    cache: str
    pid: str
    ncalrpc: str


@dataclass(frozen=True)
class GlobalOptions:
    workgroup: str
    server_name: str
    port: int
    interfaces: list[str]
    dirs: SambaDirs
    username_map: str | None = None


@dataclass(frozen=True)
class ShareOptions:
    name: str
    path: str
    snapshots: str
    comment: str = ""
    readers: list[str] = field(default_factory=list)  # Unix users, or +group
    writers: list[str] = field(default_factory=list)
    browseable: bool = True
    abe: bool = False
    recycle: bool = False
    mac: bool = False
    time_machine: bool = False
    time_machine_size: int | None = None
    encrypt: bool = False
    guest: bool = False
    dfree_command: str | None = None


def smb_conf(glob: GlobalOptions, shares: list[ShareOptions]) -> dict[str, dict[str, str]]:
    """Every section of smb.conf with its parameters, in order."""
    d = glob.dirs
    conf: dict[str, dict[str, str]] = {
        "global": {
            "server role": "standalone server",
            "workgroup": glob.workgroup,
            "server string": "Speicher",
            "smb ports": str(glob.port),
            "disable netbios": "yes",
            "server min protocol": "SMB2_02",  # SMB1 is never offered
            "private dir": d.private,
            "lock directory": d.lock,
            "state directory": d.state,
            "cache directory": d.cache,
            "pid directory": d.pid,
            "ncalrpc dir": d.ncalrpc,
            "passdb backend": f"tdbsam:{d.private}/passdb.tdb",
            "logging": "stdout",
            "log level": "1",
            "load printers": "no",
            "printing": "bsd",
            "printcap name": "/dev/null",
            "disable spoolss": "yes",
            "map to guest": "Bad User" if any(s.guest for s in shares) else "Never",
            "guest account": "nobody",
            "unix password sync": "no",
            "obey pam restrictions": "no",
            "inherit acls": "yes",  # new files follow the share's default ACL, not create mask
            "nt acl support": "no",  # permissions are Speicher's grants, not set by clients
            "store dos attributes": "yes",
            "ea support": "yes",
        }
    }
    if glob.server_name:
        conf["global"]["netbios name"] = glob.server_name
    if glob.interfaces:
        conf["global"]["interfaces"] = " ".join(glob.interfaces)
        conf["global"]["bind interfaces only"] = "yes"
    if glob.username_map:
        conf["global"]["username map"] = glob.username_map
    if any(s.mac for s in shares):
        conf["global"]["fruit:aapl"] = "yes"
        conf["global"]["fruit:model"] = "MacSamba"
    for share in shares:
        conf[share.name] = _share(share)
    return conf


def _share(s: ShareOptions) -> dict[str, str]:
    readers = sorted(set(s.readers) | set(s.writers)) + (["nobody"] if s.guest else [])
    section = {
        "path": s.path,
        "comment": s.comment,
        "browseable": _yes(s.browseable),
        "read only": "yes",
        "valid users": " ".join(readers),
        "write list": " ".join(sorted(set(s.writers))),
        "guest ok": _yes(s.guest),
        "veto files": f"/{INTERNAL_DIR}/",
        "delete veto files": "no",
    }
    if s.abe:
        section["access based share enum"] = "yes"
        section["hide unreadable"] = "yes"
    if s.encrypt:
        section["server smb encrypt"] = "required"
    if s.dfree_command:
        section["dfree command"] = s.dfree_command
    vfs = []
    if s.mac:
        vfs += ["catia", "fruit", "streams_xattr"]
        section["fruit:metadata"] = "stream"
        section["fruit:resource"] = "stream"
        section["fruit:posix_rename"] = "yes"
        section["fruit:wipe_intentionally_left_blank_rfork"] = "yes"
        section["fruit:delete_empty_adfiles"] = "yes"
        if s.time_machine:
            section["fruit:time machine"] = "yes"
            if s.time_machine_size:
                section["fruit:time machine max size"] = f"{s.time_machine_size // 1024**2}M"
    vfs.append("shadow_copy2")
    section["shadow:snapdir"] = s.snapshots
    section["shadow:basedir"] = s.path
    section["shadow:format"] = SNAPSHOT_FORMAT
    section["shadow:localtime"] = "no"
    section["shadow:sort"] = "desc"
    if s.recycle:
        vfs.append("recycle")
        section["recycle:repository"] = RECYCLE_DIR
        section["recycle:keeptree"] = "yes"
        section["recycle:versions"] = "yes"
        section["recycle:touch_mtime"] = "yes"  # the purge counts days from the deletion
        section["recycle:directory_mode"] = "0770"
        section["recycle:exclude_dir"] = RECYCLE_DIR
    section["vfs objects"] = " ".join(vfs)
    return section


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def to_text(conf: dict[str, dict[str, str]]) -> str:
    lines = ["# Written by Speicher; changes here are overwritten."]
    for section, params in conf.items():
        lines.append(f"\n[{section}]")
        lines += [f"    {key} = {value}" for key, value in params.items()]
    return "\n".join(lines) + "\n"
