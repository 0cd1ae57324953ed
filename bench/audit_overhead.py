"""What the audit log and the ransomware detector cost the file protocols: SMB, WebDAV, SFTP
and S3 with ``audit_files`` on and off, in one run, on the same pool and share.

    sudo .venv/bin/python bench/audit_overhead.py [--size-mib 512] [--files 2000] [--rounds 3]
        [--only smb,webdav,sftp,s3] [--json FILE]

One real Speicher daemon (``tests/speicher_testing.Daemon``) with a single-disk pool on a
virtual disk and one share with SMB, WebDAV, SFTP and S3 on, a user with an rw grant. Each
round restarts the daemon with ``SPEICHER_AUDIT_FILES`` true or false (ABBA order: on, off,
off, on, ... so that a slow drift of the machine falls on both sides alike; after a warm-up
round that is not counted: the first writes into a new pool were a third slower) and
measures, per protocol: one ``--size-mib`` file written and read (the source in /dev/shm, reads to
/dev/null, the page cache dropped before a read), and ``--files`` files of 4 KiB written and
read with 8 in flight. Clients: ``smbclient`` (one process for the big file, 8 processes for
the small ones), ``curl`` for WebDAV and S3 (SigV4; ``--parallel-max 8`` for the small
files), OpenSSH ``sftp -b`` (one, or 8 at once). With auditing on every create, write and
delete is a record (and smbd loads vfs_full_audit), and the detector reads every record.

For SMB's small writes each round also prints the CPU seconds of the daemon, of smbd and of
the smbclient processes: the run is bound by the two cores, so that is where its time goes.

Figures: the median of the rounds per side, MB/s (10^6 bytes) and files per second, and "on"
as a share of "off". Targets (issue 12): >= 95 % for the big file, >= 90 % for small files.
Everything it made is removed afterwards; the machine's 2 cores are shared by client and
server, as in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from file_protocols import (
    SMALL,
    Result,
    drop_caches,
    free_port,
    measure_sftp,
    measure_webdav,
    run,
    settle,
    ssh_options,
    timed,
)
from s3 import Client, small_configs

from speicher_testing import Daemon

USER, PASSWORD = "bench", "bench-password-1"
PROTOCOLS = ("smb", "webdav", "sftp", "s3")
FIELDS = ("write_mbs", "read_mbs", "small_write_ops", "small_read_ops")
TARGET = {"write_mbs": 0.95, "read_mbs": 0.95, "small_write_ops": 0.90, "small_read_ops": 0.90}


def measure_smb(
    daemon: Daemon, folder: str, big: Path, size: int, files: int, work: Path
) -> Result:
    """smbclient as ``USER``; ``folder``: the share's subfolder, already there."""
    base = ["smbclient", "-s", "/dev/null", "-p", str(daemon.smb_port), "//127.0.0.1/data",
            "-U", f"{USER}%{PASSWORD}", "-D", folder]  # fmt: skip

    def smb(commands: list[str]) -> list[str]:
        return [*base, "-c", "; ".join(commands)]

    r = Result()
    r.write_mbs = size / timed(lambda: run(smb([f"put {big} big.bin"]))) / 1e6
    drop_caches()
    r.read_mbs = size / timed(lambda: run(smb(["get big.bin /dev/null"]))) / 1e6
    source = work / "smb-small-source"
    source.mkdir(exist_ok=True)
    for i in range(files):
        (source / f"f{i:05d}").write_bytes(os.urandom(SMALL))
    parts = [list(range(k, files, 8)) for k in range(8)]

    def in_parallel(make: Callable[[int], str]) -> None:
        procs = [
            subprocess.Popen(
                smb([make(i) for i in part]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            for part in parts
        ]
        for p in procs:
            _out, err = p.communicate(timeout=3600)
            if p.returncode != 0:
                raise RuntimeError(f"smbclient failed: {err.decode()[-500:]}")

    before = cpu_of(daemon)
    r.small_write_ops = files / timed(
        lambda: in_parallel(lambda i: f"put {source}/f{i:05d} f{i:05d}")
    )
    spent = [after - then for after, then in zip(cpu_of(daemon), before, strict=True)]
    print("    CPU seconds of the small writes: daemon {:.2f}, smbd {:.2f}, smbclient {:.2f}"
          .format(*spent), flush=True)  # fmt: skip
    drop_caches()
    r.small_read_ops = files / timed(lambda: in_parallel(lambda i: f"get f{i:05d} /dev/null"))
    return r


def _cpu(pid: int, children: bool = False) -> float:
    """User and system CPU seconds of a process (and of its children that ended)."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(_stat(int(entry))[1]) == parent:
                found.append(int(entry))
        except OSError:  # it ended meanwhile
            continue
    return found


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command's name (which may hold spaces and parentheses)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cpu_of(daemon: Daemon) -> tuple[float, float, float]:
    """CPU seconds so far of the daemon, of smbd (its first process, with the session
    processes it forked and reaped) and of this bench's children (the clients): where a run's
    time goes on two cores that all of them share."""
    assert daemon.proc is not None
    smbd = [pid for pid in _children(daemon.proc.pid) if _comm(pid) == "smbd"]
    clients = os.times()
    return (
        _cpu(daemon.proc.pid),
        sum(_cpu(pid, children=True) for pid in smbd),
        clients.children_user + clients.children_system,
    )


def measure_s3(client: Client, big: Path, size: int, files: int, memory: Path, tag: str) -> Result:
    r = Result()
    r.write_mbs = size / timed(lambda: client.put(big, "big.bin")) / 1e6
    drop_caches()
    r.read_mbs = size / timed(lambda: client.get("big.bin", size)) / 1e6
    puts, gets = small_configs(client, memory, files, tag)
    r.small_write_ops = files / timed(lambda: client.many(puts, files))
    drop_caches()
    r.small_read_ops = files / timed(lambda: client.many(gets, files))
    return r


class Bench:
    def __init__(self, daemon: Daemon, work: Path, memory: Path, args: argparse.Namespace) -> None:
        self.daemon = daemon
        self.work = work
        self.memory = memory
        self.size = args.size_mib * 1024 * 1024
        self.files = args.files
        self.big = memory / "big.bin"
        self.folder = Path()
        self.key = ("", "")
        self.ssh_key = work / "speicher-key"

    def build(self) -> None:
        api = self.daemon.api
        disk = max(4, 3 * self.size // 1024**3 + 3)
        r = api.post("/disks/virtual", json={"name": "ab1", "size": f"{disk}G"})
        assert r.status_code == 201, r.text
        job = api.post("/pools", json={"name": "bench", "profile": "single", "disks": ["ab1"]})
        assert self.daemon.wait_job(job.json())["state"] == "succeeded"
        r = api.post("/users", json={"name": USER, "password": PASSWORD})
        assert r.status_code == 201, r.text
        share = {"name": "data", "pool": "bench", "webdav": True, "sftp": True, "s3": True}
        r = api.post("/shares", json=share | {"smb": {"enabled": True}})
        assert r.status_code == 201, r.text
        r = api.post("/shares/data/grants", json={"user": USER, "access": "rw"})
        assert r.status_code == 200, r.text
        r = api.post(f"/users/{USER}/s3-keys")
        assert r.status_code == 201, r.text
        self.key = (r.json()["access_key"], r.json()["secret"])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.ssh_key)])
        public = self.ssh_key.with_suffix(".pub").read_text()
        r = api.post(f"/users/{USER}/keys", json={"key": public})
        assert r.status_code == 201, r.text
        self.folder = self.daemon.mount_root / "bench" / "data"
        with self.big.open("wb") as fh:
            for _ in range(self.size // (1 << 20)):
                fh.write(os.urandom(1 << 20))

    def restart(self, audit: bool) -> None:
        self.daemon.stop()
        self.daemon.env["SPEICHER_AUDIT_FILES"] = "true" if audit else "false"
        self.daemon.start()
        state = self.daemon.api.get("/system").json()
        print(f"  daemon restarted, audit_files={audit} ({state.get('version', '?')})", flush=True)

    def measure(self, protocol: str, tag: str) -> Result:
        sub = self.folder / tag
        sub.mkdir()
        shutil.chown(sub, user=self.daemon.unix_name(USER))
        try:
            settle()
            if protocol == "smb":
                return measure_smb(self.daemon, tag, self.big, self.size, self.files, self.work)
            if protocol == "webdav":
                url = f"{self.daemon.url}/dav/data/{tag}"
                auth = ["--user", f"{USER}:{PASSWORD}"]
                return measure_webdav(url, auth, self.big, self.size, self.files, self.work)
            if protocol == "sftp":
                port = int(self.daemon.env["SPEICHER_SFTP_PORT"])
                target = [*ssh_options(port, self.ssh_key), f"{USER}@127.0.0.1"]
                return measure_sftp(
                    target, f"/data/{tag}", self.big, self.size, self.files, self.work
                )
            s3_port = int(self.daemon.env["SPEICHER_S3_PORT"])
            client = Client(f"http://127.0.0.1:{s3_port}/data/{tag}", *self.key)
            return measure_s3(client, self.big, self.size, self.files, self.memory, tag)
        finally:
            shutil.rmtree(sub, ignore_errors=True)
            for p in [*self.work.glob("*small-source"), *self.memory.glob("small-source")]:
                shutil.rmtree(p, ignore_errors=True)
            for p in self.memory.glob("*.curl"):
                p.unlink()


def report(results: dict[str, dict[str, list[Result]]]) -> str:
    rows = [
        "| protocol | audit | write MB/s | read MB/s | small writes/s | small reads/s |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for protocol, sides in results.items():
        medians = {
            side: {f: statistics.median(getattr(r, f) for r in runs) for f in FIELDS}
            for side, runs in sides.items()
        }
        for side in ("on", "off"):
            m = medians[side]
            rows.append(
                f"| {protocol} | {side} | {m['write_mbs']:,.0f} | {m['read_mbs']:,.0f} "
                f"| {m['small_write_ops']:,.0f} | {m['small_read_ops']:,.0f} |"
            )
        ratios = []
        for f in FIELDS:
            ratio = medians["on"][f] / medians["off"][f] if medians["off"][f] else 0.0
            mark = "ok" if ratio >= TARGET[f] else f"below {TARGET[f]:.0%}"
            ratios.append(f"{f} {ratio:.0%} ({mark})")
        verdicts.append(f"- {protocol}, on as a share of off: " + ", ".join(ratios))
    return "\n".join([*rows, "", *verdicts])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side")
    parser.add_argument("--only", default=",".join(PROTOCOLS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, Unix accounts, drop_caches)")
    protocols = [p for p in args.only.split(",") if p]
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        sys.exit(f"unknown protocol(s): {', '.join(sorted(unknown))}")
    base = Path(tempfile.mkdtemp(prefix="speicher-bench-", dir="/tmp"))
    base.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="speicher-bench-work-"))
    memory = Path(tempfile.mkdtemp(prefix="speicher-bench-", dir="/dev/shm"))
    daemon = Daemon(base)
    daemon.env["SPEICHER_SFTP_PORT"] = str(free_port())
    results: dict[str, dict[str, list[Result]]] = {p: {"on": [], "off": []} for p in protocols}
    order = [("on", "off", "off", "on")[i % 4] for i in range(2 * args.rounds)]
    try:
        daemon.start()
        daemon.use_token()
        bench = Bench(daemon, work, memory, args)
        bench.build()
        # a first round that is not counted: the pool's first writes allocate its chunks
        for n, side in enumerate(["off", *order]):
            print(f"round {n}/{len(order)}: audit {side}{' (warm-up)' * (n == 0)}", flush=True)
            bench.restart(side == "on")
            for protocol in protocols:
                r = bench.measure(protocol, f"{protocol}-{n}")
                if n:
                    results[protocol][side].append(r)
                print(f"  {protocol}: {vars(r)}", flush=True)
    finally:
        shutil.rmtree(memory, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        daemon.cleanup()
    print(report(results))
    if args.json:
        data = {p: {s: [vars(r) for r in runs] for s, runs in sides.items()}
                for p, sides in results.items()}  # fmt: skip
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
