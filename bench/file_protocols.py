"""WebDAV and SFTP speed on one share, side by side with the servers people compare us to.

    sudo .venv/bin/python bench/file_protocols.py [--size-mib 1024] [--files 2000] [--json FILE]
        [--only direct,nginx,rclone,speicher-webdav,speicher-webdav-standard,openssh,speicher-sftp,
                speicher-sftp-standard]

It starts a real Speicher daemon (``tests/speicher_testing.Daemon``) with a single-disk pool on
a virtual disk, a share with WebDAV and SFTP on and a user with an rw grant, and serves the
very same folder with nginx's WebDAV module (Debian ``nginx``), ``rclone serve webdav`` and
OpenSSH's ``sftp-server`` (an ``sshd`` of its own on a high port, key login as root). Then,
against each: a sequential write and a read of one ``--size-mib`` file (from and to memory:
the source lies in /dev/shm, reads go to /dev/null), and ``--files`` files of 4 KiB written
and read with 8 in flight. WebDAV clients are ``curl`` (one process for the big file; one
``curl --parallel --parallel-max 8`` for the small files), SFTP clients OpenSSH ``sftp -b``
(one for the big file; 8 at once with an equal share of the small files). "direct" is this
process writing and reading the folder itself (1 MiB blocks, fsync at the end; 8 threads for
the small files). Figures: MB/s (10^6 bytes) and operations per second, and each Speicher
figure as a ratio to the best peer of its protocol. Speicher is measured twice per protocol:
with the share's ``sync`` at ``always`` (the default: every upload is on disk before it is
answered) and at ``standard`` (``-standard``: uploads reach the disk with the pool's next
commit, as nginx's, rclone's and sftp-server's do). Targets (issue 8): WebDAV big files >=
80 % of nginx both ways, small files >= rclone; SFTP >= 80 % of OpenSSH. Everything it made
is removed afterwards. The machine's 2 cores are shared by client and server, as in CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from speicher_testing import Daemon

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-password-1"
SMALL = 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def ensure(*packages_and_tools: tuple[str, str]) -> None:
    missing = [pkg for pkg, tool in packages_and_tools if not Path(tool).exists()]
    if missing:
        subprocess.run([str(ROOT / "scripts" / "apt-install"), *missing], check=True)


@dataclass
class Result:
    write_mbs: float = 0.0
    read_mbs: float = 0.0
    small_write_ops: float = 0.0
    small_read_ops: float = 0.0


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(argv: list[str], **kwargs: object) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")


# -- the measurements, per kind of client --------------------------------------------------------


def measure_direct(folder: Path, big: Path, size: int, files: int) -> Result:
    target = folder / "direct-big.bin"

    def write() -> None:
        with big.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())

    def read() -> None:
        with target.open("rb") as fh:
            while fh.read(1 << 20):
                pass

    small_dir = folder / "direct-small"
    small_dir.mkdir()
    payload = os.urandom(SMALL)

    def put(i: int) -> None:
        with (small_dir / f"f{i:05d}").open("wb") as fh:
            fh.write(payload)

    def get(i: int) -> None:
        (small_dir / f"f{i:05d}").read_bytes()

    r = Result(size / timed(write) / 1e6, 0, 0, 0)
    drop_caches()
    r.read_mbs = size / timed(read) / 1e6
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        r.small_write_ops = files / timed(lambda: list(pool.map(put, range(files))))
        os.sync()
        drop_caches()
        r.small_read_ops = files / timed(lambda: list(pool.map(get, range(files))))
    return r


def measure_webdav(
    url: str, auth: list[str], big: Path, size: int, files: int, work: Path
) -> Result:
    curl = ["curl", "--silent", "--show-error", "--fail", *auth]
    r = Result()
    r.write_mbs = size / timed(lambda: run([*curl, "-T", str(big), f"{url}/big.bin"])) / 1e6
    drop_caches()
    r.read_mbs = size / timed(lambda: run([*curl, "-o", "/dev/null", f"{url}/big.bin"])) / 1e6
    run([*curl, "-X", "MKCOL", f"{url}/small/"])
    source = work / "small-source"
    source.mkdir(exist_ok=True)
    for i in range(files):
        (source / f"f{i:05d}").write_bytes(os.urandom(SMALL))
    puts = work / "puts.curl"
    puts.write_text(
        "".join(
            f'upload-file = "{source}/f{i:05d}"\nurl = "{url}/small/f{i:05d}"\n'
            for i in range(files)
        )
    )
    gets = work / "gets.curl"
    gets.write_text(
        "".join(f'url = "{url}/small/f{i:05d}"\noutput = "/dev/null"\n' for i in range(files))
    )
    parallel = [*curl, "--parallel", "--parallel-max", "8"]
    r.small_write_ops = files / timed(lambda: run([*parallel, "-K", str(puts)]))
    drop_caches()
    r.small_read_ops = files / timed(lambda: run([*parallel, "-K", str(gets)]))
    return r


def measure_sftp(
    target: list[str], base: str, big: Path, size: int, files: int, work: Path
) -> Result:
    """``target``: the ssh options and user@host for ``sftp``; ``base``: the remote folder."""

    def batch(lines: list[str], name: str) -> list[str]:
        script = work / name
        script.write_text("\n".join(lines) + "\n")
        return ["sftp", "-q", "-b", str(script), *target]

    r = Result()
    r.write_mbs = size / timed(lambda: run(batch([f"put {big} {base}/big.bin"], "put.b"))) / 1e6
    drop_caches()
    r.read_mbs = size / timed(lambda: run(batch([f"get {base}/big.bin /dev/null"], "get.b"))) / 1e6
    source = work / "sftp-small-source"
    source.mkdir(exist_ok=True)
    for i in range(files):
        (source / f"f{i:05d}").write_bytes(os.urandom(SMALL))
    run(batch([f"-mkdir {base}/small"], "mkdir.b"))
    shares = [list(range(k, files, 8)) for k in range(8)]

    def in_parallel(make: Callable[[int, list[int]], list[str]]) -> None:
        procs = [
            subprocess.Popen(
                batch(make(k, part), f"b{k}"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            for k, part in enumerate(shares)
        ]
        for p in procs:
            _out, err = p.communicate(timeout=3600)
            if p.returncode != 0:
                raise RuntimeError(f"sftp failed: {err.decode()[-500:]}")

    r.small_write_ops = files / timed(
        lambda: in_parallel(
            lambda _k, part: [f"put {source}/f{i:05d} {base}/small/f{i:05d}" for i in part]
        )
    )
    drop_caches()
    r.small_read_ops = files / timed(
        lambda: in_parallel(lambda _k, part: [f"get {base}/small/f{i:05d} /dev/null" for i in part])
    )
    return r


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


STILL = 10.0  # seconds without a discard: what waits is held back, not being done
SETTLED = 64 * 1024 * 1024  # discardable bytes left that count as settled


def settle(timeout: float = 180) -> float:
    """Wait until the pools have written everything and discarded what was deleted (btrfs's
    ``discard=async``, on loop devices a hole punched into the image file, which the host's
    file system discards in turn): a write timed right after a big deletion competes with
    those discards and measured a third to a half slower here. How long it took."""
    start = time.monotonic()
    os.sync()
    counters = list(Path("/sys/fs/btrfs").glob("*/discard/discardable_bytes"))
    last, moved = -1, start
    while time.monotonic() - start < timeout:
        # a few MB stay discardable for minutes (btrfs holds small extents back until more
        # come), and waited for, every run took the whole timeout; they slow nothing. Nor
        # do a few extents that stay put: after a subvolume of a GiB was deleted, 187 MB in
        # two extents waited the whole 180 s (btrfs delays discarding a block group that
        # became unused), and no discard was going on meanwhile
        waiting = sum(int(c.read_text() or 0) for c in counters if c.exists())
        if waiting != last:
            last, moved = waiting, time.monotonic()
        if waiting < SETTLED or time.monotonic() - moved > STILL:
            break
        time.sleep(0.2)
    os.sync()
    time.sleep(1)
    return time.monotonic() - start


# -- the servers -----------------------------------------------------------------------------------


def start_nginx(folder: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    ensure(("nginx", "/usr/sbin/nginx"))
    conf = work / "nginx.conf"
    (work / "nginx-tmp").mkdir()
    conf.write_text(
        f"""
worker_processes 2;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {work}/nginx-tmp;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            root {folder};
            dav_methods PUT DELETE MKCOL COPY MOVE;
            create_full_put_path on;
            dav_access user:rw group:rw;
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"], start_new_session=True)
    wait_port(port)
    return proc


def start_rclone(folder: Path, port: int) -> subprocess.Popen[bytes]:
    ensure(("rclone", "/usr/bin/rclone"))
    proc = subprocess.Popen(
        ["rclone", "serve", "webdav", str(folder), "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_port(port)
    return proc


def start_sshd(work: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    ensure(("openssh-server", "/usr/sbin/sshd"))
    key = work / "client-key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host-key")])
    (work / "authorized").write_text((work / "client-key.pub").read_text())
    os.chmod(work / "authorized", 0o600)
    conf = work / "sshd_config"
    conf.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {work}/host-key
PidFile {work}/sshd.pid
AuthorizedKeysFile {work}/authorized
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
"""
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], start_new_session=True)
    wait_port(port)
    return proc, key


def ssh_options(port: int, key: Path | None) -> list[str]:
    opts = ["-P", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    if key is not None:
        opts += ["-i", str(key), "-o", "BatchMode=yes"]
    return opts


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def build(daemon: Daemon, size: int) -> Path:
    api = daemon.api
    disk = max(4, 3 * size // 1024**3 + 3)
    assert api.post("/disks/virtual", json={"name": "fb1", "size": f"{disk}G"}).status_code == 201
    job = api.post("/pools", json={"name": "bench", "profile": "single", "disks": ["fb1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/users", json={"name": USER, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = api.post("/shares", json={"name": "data", "pool": "bench", "webdav": True, "sftp": True})
    if r.status_code == 422:  # a Speicher without the switches: the peers can still be measured
        print("warning: this Speicher has no WebDAV/SFTP switches", file=sys.stderr)
        r = api.post("/shares", json={"name": "data", "pool": "bench"})
    assert r.status_code == 201, r.text
    r = api.post("/shares/data/grants", json={"user": USER, "access": "rw"})
    assert r.status_code == 200, r.text
    return daemon.mount_root / "bench" / "data"


def table(results: dict[str, Result]) -> str:
    rows = [
        "| server | write MB/s | read MB/s | small writes/s | small reads/s |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r.write_mbs:,.0f} | {r.read_mbs:,.0f} | {r.small_write_ops:,.0f} "
            f"| {r.small_read_ops:,.0f} |"
        )
    # issue 8's targets: big files against nginx, small files against rclone; SFTP: OpenSSH
    targets = {
        "speicher-webdav": ("nginx", "nginx", "rclone", "rclone"),
        "speicher-webdav-standard": ("nginx", "nginx", "rclone", "rclone"),
        "speicher-sftp": ("openssh",) * 4,
        "speicher-sftp-standard": ("openssh",) * 4,
    }
    fields = ("write_mbs", "read_mbs", "small_write_ops", "small_read_ops")
    for ours, peers in targets.items():
        if ours not in results:
            continue
        for field, peer in zip(fields, peers, strict=True):
            if peer in results and getattr(results[peer], field):
                ratio = getattr(results[ours], field) / getattr(results[peer], field)
                rows.append(f"- {ours} {field}: {ratio:.0%} of {peer}")
    return "\n".join(rows)


class Bench:
    """One run: the daemon, its share's folder, and the peers serving the same folder."""

    def __init__(
        self, daemon: Daemon, folder: Path, work: Path, big: Path, args: argparse.Namespace
    ) -> None:
        self.daemon = daemon
        self.folder = folder
        self.work = work
        self.big = big
        self.size = args.size_mib * 1024 * 1024
        self.files = args.files
        self.sftp_port = int(daemon.env["SPEICHER_SFTP_PORT"])

    def fresh(self, name: str) -> Path:
        sub = self.folder / name
        sub.mkdir()
        shutil.chown(sub, user=self.daemon.unix_name(USER))
        return sub

    def clean(self, sub: Path) -> None:
        shutil.rmtree(sub, ignore_errors=True)
        for p in self.work.glob("*small-source"):
            shutil.rmtree(p, ignore_errors=True)

    def direct(self, sub: Path) -> Result:
        return measure_direct(sub, self.big, self.size, self.files)

    def nginx(self, sub: Path) -> Result:
        port = free_port()
        proc = start_nginx(sub, self.work, port)
        try:
            return measure_webdav(
                f"http://127.0.0.1:{port}", [], self.big, self.size, self.files, self.work
            )
        finally:
            stop(proc)

    def rclone(self, sub: Path) -> Result:
        port = free_port()
        proc = start_rclone(sub, port)
        try:
            return measure_webdav(
                f"http://127.0.0.1:{port}", [], self.big, self.size, self.files, self.work
            )
        finally:
            stop(proc)

    def speicher_webdav(self, sub: Path) -> Result:
        url = f"{self.daemon.url}/dav/data/{sub.name}"
        auth = ["--user", f"{USER}:{PASSWORD}"]
        return measure_webdav(url, auth, self.big, self.size, self.files, self.work)

    def speicher_webdav_standard(self, sub: Path) -> Result:
        with self.sync("standard"):
            return self.speicher_webdav(sub)

    def speicher_sftp_standard(self, sub: Path) -> Result:
        with self.sync("standard"):
            return self.speicher_sftp(sub)

    @contextlib.contextmanager
    def sync(self, mode: str) -> Iterator[None]:
        """The share's write_sync set to ``mode`` for a measurement."""
        r = self.daemon.api.patch("/shares/data", json={"sync": mode})
        assert r.status_code == 200, r.text
        try:
            yield
        finally:
            self.daemon.api.patch("/shares/data", json={"sync": "always"})

    def openssh(self, sub: Path) -> Result:
        port = free_port()
        proc, key = start_sshd(self.work, port)
        try:
            target = [*ssh_options(port, key), "root@127.0.0.1"]
            return measure_sftp(target, str(sub), self.big, self.size, self.files, self.work)
        finally:
            stop(proc)

    def speicher_sftp(self, sub: Path) -> Result:
        key = self.work / "speicher-key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
            public = (self.work / "speicher-key.pub").read_text()
            r = self.daemon.api.post(f"/users/{USER}/keys", json={"key": public})
            assert r.status_code == 201, r.text
        target = [*ssh_options(self.sftp_port, key), f"{USER}@127.0.0.1"]
        return measure_sftp(target, f"/data/{sub.name}", self.big, self.size, self.files, self.work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--only", default=",".join(TARGETS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, Unix accounts, drop_caches)")
    base = Path(tempfile.mkdtemp(prefix="speicher-bench-", dir="/tmp"))
    base.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="speicher-bench-work-"))
    memory = Path(tempfile.mkdtemp(prefix="speicher-bench-", dir="/dev/shm"))
    big = memory / "big.bin"
    daemon = Daemon(base)
    daemon.env["SPEICHER_SFTP_PORT"] = str(free_port())
    results: dict[str, Result] = {}
    try:
        daemon.start()
        folder = build(daemon, args.size_mib * 1024 * 1024)
        with big.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(1 << 20))
        bench = Bench(daemon, folder, work, big, args)
        for name in args.only.split(","):
            sub = bench.fresh(TARGETS[name])
            try:
                results[name] = getattr(bench, name.replace("-", "_"))(sub)
            finally:
                bench.clean(sub)
    finally:
        shutil.rmtree(memory, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        daemon.cleanup()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({k: vars(v) for k, v in results.items()}, indent=2) + "\n")
    return 0


# target -> the folder of the share it works in
TARGETS = {
    "direct": "direct",
    "nginx": "nginx",
    "rclone": "rclone",
    "speicher-webdav": "webdav",
    "speicher-webdav-standard": "webdav-standard",
    "openssh": "openssh",
    "speicher-sftp": "sftp",
    "speicher-sftp-standard": "sftp-standard",
}


if __name__ == "__main__":
    sys.exit(main())
