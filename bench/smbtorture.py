"""Samba's own conformance suite, smbtorture, against a Speicher share, with a stock smbd as the
baseline.

The script starts a real Speicher daemon (``tests/speicher_testing.Daemon``), makes virtual
disks, a pool, a user with a password and a share with SMB on and an rw grant, all through the
API. Next to it, it starts a stock smbd of its own (own smb.conf, own directories, own port)
serving a second subvolume of the same pool to a separate Unix user with the same POSIX ACL,
so both sides are non-root users on the same file system. The stock share has Samba's
defaults (path, writeable, valid users: ``--baseline stock``, the default), or the share
section Speicher renders, adapted (``--baseline same-options``). Every suite runs against
both; a test that passes on the stock share and fails on Speicher's is a regression, and the
script exits 1 if there is any (0 if none, 2 without root; a crash shows a traceback).

Run as root:  .venv/bin/python bench/smbtorture.py [--suites smb2.rw ...] [--json FILE]

To test a hypothesis about a regression, change the stock side (--stock-global,
--stock-share, --stock-globals-from-speicher, --stock-samba-dir-mode) until it fails the same
way, or the Speicher side (--speicher-samba-dir-mode) until it passes; --targets runs one side.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS_DIR))

from speicher_testing import Daemon, free_port  # noqa: E402 - found through TESTS_DIR

DEFAULT_SUITES = [
    "smb2.connect",
    "smb2.read",
    "smb2.rw",
    "smb2.create",
    "smb2.dir",
    "smb2.rename",
    "smb2.lock",
    "smb2.getinfo",
    "smb2.setinfo",
    "smb2.timestamps",
    "smb2.sharemode",
    "smb2.notify",
    "smb2.acls",
    "smb2.streams",
    "smb2.durable-open",
    "smb2.oplock",
    "smb2.compound",
    "smb2.maxfid",
]
BASELINES = ("stock", "same-options")
# Suites whose tests run one smbtorture each, with --test-timeout: in smb2.notify a test can
# wait forever (on stock Samba too), and a suite-wide timeout would lose the tests after it.
SPLIT_SUITES = ["smb2.notify"]

# What Samba's own selftest passes when it runs smbtorture against smbd (source3/selftest).
TORTURE_OPTIONS = [
    "--target=samba3",
    "--format=subunit",
    "--fullname",
    "--option=torture:progress=no",
    "--option=torture:sharedelay=100000",
    "--option=torture:writetimeupdatedelay=500000",
]

POOL = "torture"
SHARE = "torture"  # the Speicher share, and the name the stock smbd offers its share under
STOCK_SUBVOLUME = "torture-stock"  # the stock share's directory: a second share, SMB off
USER = "torturer"

# Settings of the stock [global] section besides directories and port: only what keeps a
# standalone smbd from printing and browsing; everything about files stays Samba's default.
STOCK_GLOBALS = {
    "server role": "standalone server",
    "workgroup": "WORKGROUP",
    "server string": "stock Samba",
    "disable netbios": "yes",
    "server min protocol": "SMB2_02",
    "log level": "1",
    "load printers": "no",
    "printing": "bsd",
    "printcap name": "/dev/null",
    "disable spoolss": "yes",
}
# Speicher globals that are about this instance (where, which port, who), never copied.
INSTANCE_GLOBALS = {
    "smb ports",
    "private dir",
    "lock directory",
    "state directory",
    "cache directory",
    "pid directory",
    "ncalrpc dir",
    "passdb backend",
    "username map",
    "netbios name",
    "interfaces",
    "bind interfaces only",
    "logging",
    "log level",
}
USER_LIST_OPTIONS = {
    "valid users",
    "invalid users",
    "read list",
    "write list",
    "admin users",
    "force user",
}
SAMBA_DIRS = ("private", "lock", "state", "cache", "pid", "ncalrpc")

RESULT_WORDS = {
    "success": "pass",
    "successful": "pass",
    "xfail": "pass",
    "failure": "fail",
    "fail": "fail",
    "uxsuccess": "fail",
    "error": "error",
    "skip": "skip",
}
_LINE = re.compile(
    r"^(?P<word>test|testing|success|successful|failure|fail|error|skip|xfail|uxsuccess)"
    r":\s*(?P<name>.*?)\s*(?P<open>\[(?:\s*multipart)?)?\s*$"
)


def log(message: str) -> None:
    print(message, flush=True)


# -- smbtorture output ---------------------------------------------------------------------------


@dataclass
class SuiteRun:
    """One suite against one server: every test's status (pass, fail, error, skip) and, for the
    ones that did not pass, smbtorture's message."""

    suite: str
    target: str
    status: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    output: str = ""

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.status.values() if s in statuses)

    def counts(self) -> dict[str, int]:
        return {
            "pass": self.count("pass"),
            "fail": self.count("fail", "error"),
            "skip": self.count("skip"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "tests": self.status,
            "messages": self.messages,
            "seconds": round(self.seconds, 1),
            "returncode": self.returncode,
            "timed_out": self.timed_out,
        }


def parse_subunit(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Per-test status and messages from smbtorture's subunit (v1, text) output.

    A result line may open a ``[`` block of details that ends with a line ``]``. Tests that
    started (``test:``) without a result line are errors: smbtorture died or was stopped."""
    status: dict[str, str] = {}
    messages: dict[str, str] = {}
    started: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _LINE.match(lines[i])
        i += 1
        if m is None:
            continue
        word, name = m["word"], m["name"]
        details: list[str] = []
        if m["open"]:
            while i < len(lines) and lines[i].strip() != "]":
                details.append(lines[i])
                i += 1
            i += 1
        if word in ("test", "testing"):
            started.append(name)
            continue
        status[name] = RESULT_WORDS[word]
        if details and status[name] != "pass":
            messages[name] = "\n".join(details).strip()
    for name in started:
        if name not in status:
            status[name] = "error"
            messages[name] = "no result: smbtorture ended before this test finished"
    return status, messages


# -- smb.conf ------------------------------------------------------------------------------------


def parse_conf(text: str) -> dict[str, dict[str, str]]:
    conf: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = conf.setdefault(line[1:-1], {})
        elif "=" in line and section is not None:
            key, value = line.split("=", 1)
            section[key.strip().lower()] = value.strip()
    return conf


def conf_text(conf: dict[str, dict[str, str]], header: str) -> str:
    lines = [f"# {header}"]
    for name, params in conf.items():
        lines.append(f"\n[{name}]")
        lines += [f"    {key} = {value}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip().lower(), value.strip()


# -- processes -----------------------------------------------------------------------------------


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}{result.stdout}"
        )
    return result


def pids_of_conf(conf: Path) -> list[int]:
    """Every process started with ``--configfile=<conf>``: smbd, its children, and the
    samba-dcerpcd/rpcd_* helpers it started."""
    needle = f"--configfile={conf}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def end_processes(pids: list[int], grace: float = 10) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_port(port: int, alive: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server for port {port} exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# -- the two servers -----------------------------------------------------------------------------


@dataclass
class Target:
    """One SMB server and share to run smbtorture against."""

    label: str
    port: int
    share: str
    user: str
    password: str


class StockSamba:
    """A stock smbd of our own: its own smb.conf, directories, port and Unix user."""

    def __init__(self, root: Path, samba_dir_mode: int = 0o755) -> None:
        self.root = root
        # Samba's directories live in samba/ (Debian: /var/lib/samba and /run/samba, 0755)
        self.samba_dir = root / "samba"
        self.samba_dir_mode = samba_dir_mode
        self.conf = root / "smb.conf"
        self.client_conf = root / "client" / "smb.conf"
        self.log_path = root / "smbd.log"
        self.port = free_port()
        self.user = f"stk{secrets.token_hex(3)}"
        self.password = secrets.token_urlsafe(12)
        self.user_created = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.text = ""

    def dirs(self) -> dict[str, str]:
        return {name: str(self.samba_dir / name) for name in SAMBA_DIRS}

    def prepare(self) -> None:
        self.samba_dir.mkdir()
        self.samba_dir.chmod(self.samba_dir_mode)
        for name in SAMBA_DIRS:
            (self.samba_dir / name).mkdir(mode=0o755)
        (self.samba_dir / "private").chmod(0o700)
        (self.root / "dfree").mkdir(exist_ok=True)
        (self.root / "dfree").chmod(0o755)
        client = self.client_conf.parent
        for name in SAMBA_DIRS:
            (client / name).mkdir(parents=True, exist_ok=True)
        d = {name: str(client / name) for name in SAMBA_DIRS}
        self.client_conf.write_text(
            "[global]\n"
            f"    private dir = {d['private']}\n"
            f"    lock directory = {d['lock']}\n"
            f"    state directory = {d['state']}\n"
            f"    cache directory = {d['cache']}\n"
            f"    ncalrpc dir = {d['ncalrpc']}\n"
            "    client min protocol = SMB2_02\n"
        )

    def create_user(self) -> None:
        run(
            [
                "useradd",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "smbtorture baseline (bench/smbtorture.py)",
                self.user,
            ]
        )
        self.user_created = True

    def delete_user(self) -> None:
        if self.user_created:
            subprocess.run(["userdel", self.user], capture_output=True, check=False)
            self.user_created = False

    def write_conf(self, glob: dict[str, str], shares: dict[str, dict[str, str]]) -> None:
        d = self.dirs()
        instance = {
            "smb ports": str(self.port),
            "private dir": d["private"],
            "lock directory": d["lock"],
            "state directory": d["state"],
            "cache directory": d["cache"],
            "pid directory": d["pid"],
            "ncalrpc dir": d["ncalrpc"],
            "passdb backend": f"tdbsam:{d['private']}/passdb.tdb",
        }
        conf = {"global": {**glob, **instance}, **shares}
        self.text = conf_text(conf, "Stock Samba baseline written by bench/smbtorture.py")
        self.conf.write_text(self.text)
        self.conf.chmod(0o644)
        run(["testparm", "--suppress-prompt", str(self.conf)], timeout=60)

    def set_password(self) -> None:
        run(
            ["smbpasswd", "-c", str(self.conf), "-a", "-s", self.user],
            input=f"{self.password}\n{self.password}\n",
            timeout=60,
        )

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "smbd",
                    "--foreground",
                    "--no-process-group",
                    f"--configfile={self.conf}",
                    "--debug-stdout",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port(self.port, lambda: self.proc is not None and self.proc.poll() is None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        end_processes(pids_of_conf(self.conf))

    def target(self, share: str) -> Target:
        return Target("stock", self.port, share, self.user, self.password)


def ok(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}, not {status}:\n{response.text}"
        )
    return response.json() if response.content else None


def set_up_speicher(daemon: Daemon, args: argparse.Namespace) -> tuple[Target, dict[str, Any]]:
    """Disks, pool, user, the share under test and the stock share's subvolume, via the API.
    Returns the Speicher target and the stock subvolume's share record."""
    api = daemon.api
    disks = [f"{POOL}{n}" for n in range(1 if args.profile == "single" else 2)]
    for disk in disks:
        ok(api.post("/disks/virtual", json={"name": disk, "size": args.disk_size}), 201)
    job = daemon.wait_job(
        ok(
            api.post("/pools", json={"name": POOL, "profile": args.profile, "disks": disks}),
            202,
        )
    )
    if job["state"] != "succeeded":
        raise RuntimeError(f"creating the pool failed: {job}")
    password = secrets.token_urlsafe(12)
    ok(api.post("/users", json={"name": USER, "password": password}), 201)
    smb = {"enabled": True, **args.smb_options}
    ok(api.post("/shares", json={"name": SHARE, "pool": POOL, "smb": smb}), 201)
    ok(api.post(f"/shares/{SHARE}/grants", json={"user": USER, "access": "rw"}))
    stock_share = ok(api.post("/shares", json={"name": STOCK_SUBVOLUME, "pool": POOL}), 201)
    return Target("speicher", daemon.smb_port, SHARE, USER, password), stock_share


def stock_config(
    speicher_conf: dict[str, dict[str, str]],
    daemon: Daemon,
    stock: StockSamba,
    subvolume: dict[str, Any],
    args: argparse.Namespace,
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The stock [global] and share sections. Baseline ``stock``: a share with Samba's
    defaults (path, writeable, the user), so every option Speicher sets is under test.
    Baseline ``same-options``: Speicher's share section with its paths, dfree helper and users
    swapped for the stock ones, so only what is not in the share section is."""
    if args.baseline == "stock":
        glob = {**STOCK_GLOBALS, **dict(args.stock_global)}
        if args.stock_globals_from_speicher:
            glob.update(
                {k: v for k, v in speicher_conf["global"].items() if k not in INSTANCE_GLOBALS}
            )
        plain = {"path": subvolume["path"], "read only": "no", "valid users": stock.user}
        plain.update(dict(args.stock_share))
        return glob, {SHARE: plain}
    glob = dict(STOCK_GLOBALS)
    # vfs_fruit's global half belongs to the share option that turned it on
    glob.update({k: v for k, v in speicher_conf["global"].items() if k.startswith("fruit:")})
    if args.stock_globals_from_speicher:
        glob.update({k: v for k, v in speicher_conf["global"].items() if k not in INSTANCE_GLOBALS})
    glob.update(dict(args.stock_global))

    speicher_share = speicher_conf[SHARE]
    speicher_unix = daemon.unix_name(USER)
    section: dict[str, str] = {}
    for key, value in speicher_share.items():
        if key in {"path", "shadow:basedir"}:
            section[key] = subvolume["path"]
        elif key == "shadow:snapdir":
            section[key] = subvolume["snapshots_dir"]
        elif key == "dfree command":
            section[key] = write_dfree(stock, subvolume["path"])
        elif key in USER_LIST_OPTIONS:
            section[key] = " ".join(stock.user if w == speicher_unix else w for w in value.split())
        else:
            section[key] = value
    section.update(dict(args.stock_share))
    ours = (subvolume["path"], subvolume["snapshots_dir"])
    leftovers = [
        f"{k} = {v}"
        for k, v in section.items()
        if daemon.prefix in v or (str(daemon.base) in v and v not in ours)
    ]
    if leftovers:
        raise RuntimeError(f"the stock share still points at Speicher's: {leftovers}")
    return glob, {SHARE: section}


def set_up_stock(
    stock: StockSamba,
    speicher_conf: dict[str, dict[str, str]],
    daemon: Daemon,
    subvolume: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Directories, Unix user, smb.conf, passdb entry and ACL of the stock smbd; start it."""
    stock.prepare()
    stock.create_user()
    glob, shares = stock_config(speicher_conf, daemon, stock, subvolume, args)
    stock.write_conf(glob, shares)
    stock.set_password()
    grant_stock_user(subvolume["path"], stock.user)
    stock.start()


def write_dfree(stock: StockSamba, path: str) -> str:
    """A dfree helper like Speicher's (it prints fixed figures), for the stock share."""
    st = os.statvfs(path)
    figures = stock.root / "dfree" / "figures"
    figures.write_text(f"{st.f_blocks * st.f_frsize // 1024} {st.f_bavail * st.f_frsize // 1024}\n")
    figures.chmod(0o644)
    script = stock.root / "dfree" / "dfree.sh"
    script.write_text(f'#!/bin/sh\nexec cat "{figures}"\n')
    script.chmod(0o755)
    return str(script)


def grant_stock_user(path: str, user: str) -> None:
    """What Speicher's rw grant does to a share's top folder: a named user entry and the same
    as default entry (the share was created with the base ACL, so the rest already matches)."""
    run(["setfacl", "-m", f"u:{user}:rwx,d:u:{user}:rwx", path])


def auth_file(target: Target, folder: Path) -> Path:
    """The user's credentials in a file only root reads (not on command lines for ps)."""
    path = folder / f"{target.label}.auth"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"username = {target.user}\npassword = {target.password}\n")
    return path


def getfacl(path: str) -> str:
    return run(["getfacl", "--omit-header", "--absolute-names", path]).stdout


def check_login(target: Target, client_conf: Path, timeout: float = 60) -> None:
    """smbclient lists the share: the server is up and the user may log in."""
    argv = [
        "smbclient",
        f"//127.0.0.1/{target.share}",
        "-p",
        str(target.port),
        f"--configfile={client_conf}",
        "-A",
        str(auth_file(target, client_conf.parent)),
        "-m",
        "SMB3",
        "-c",
        "mkdir smbtorture-check; rmdir smbtorture-check; ls",
    ]
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        if result.returncode == 0 and "NT_STATUS" not in result.stdout + result.stderr:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{target.label}: smbclient cannot use //127.0.0.1/{target.share} on port "
                f"{target.port}:\n{result.stdout}{result.stderr}"
            )
        time.sleep(1)


# -- running the suites --------------------------------------------------------------------------


def run_suite(
    suite: str, target: Target, client_conf: Path, timeout: float, extra: list[str]
) -> SuiteRun:
    argv = [
        "smbtorture",
        f"//127.0.0.1/{target.share}",
        "-p",
        str(target.port),
        f"--configfile={client_conf}",
        "-A",
        str(auth_file(target, client_conf.parent)),
        *TORTURE_OPTIONS,
        *extra,
        suite,
    ]
    result = SuiteRun(suite, target.label)
    started = time.monotonic()
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=client_conf.parent,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            result.timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: smbtorture only
            out, _ = proc.communicate()
    result.seconds = time.monotonic() - started
    result.returncode = proc.returncode
    result.output = out.decode(errors="replace")
    result.status, result.messages = parse_subunit(result.output)
    if result.timed_out:
        for name, message in result.messages.items():
            if result.status[name] == "error" and message.startswith("no result"):
                result.messages[name] = f"timed out after {timeout:.0f} s"
    if not result.status or (result.timed_out and "error" not in result.status.values()):
        why = f"timed out after {timeout:.0f} s" if result.timed_out else "no test ran"
        result.status[f"{suite} (suite)"] = "error"
        result.messages[f"{suite} (suite)"] = f"{why}:\n{result.output[-2000:]}"
    return result


def tests_of(suite: str) -> list[str]:
    """The tests of a suite as smbtorture names them (``smbtorture --list``), e.g.
    ``smb2.notify.valid-req``."""
    out = subprocess.run(
        ["smbtorture", "--list"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    names: list[str] = []
    for line in out.splitlines():
        parts = line.strip().split(".")
        if line.startswith(suite + ".") and len(parts) >= 3:
            name = ".".join(parts[:3])
            if name not in names:
                names.append(name)
    return names


def run_split(suite: str, target: Target, client_conf: Path, args: argparse.Namespace) -> SuiteRun:
    """A suite test by test, each with ``--test-timeout``, as one result."""
    merged = SuiteRun(suite, target.label)
    for test in tests_of(suite):
        r = run_suite(test, target, client_conf, args.test_timeout, args.torture_option)
        merged.status.update(r.status)
        merged.messages.update(r.messages)
        merged.seconds += r.seconds
        merged.timed_out = merged.timed_out or r.timed_out
        merged.output += r.output
        merged.returncode = r.returncode if r.returncode else merged.returncode
    return merged


def run_one(suite: str, target: Target, client_conf: Path, args: argparse.Namespace) -> SuiteRun:
    if suite in args.split:
        return run_split(suite, target, client_conf, args)
    return run_suite(suite, target, client_conf, args.timeout, args.torture_option)


def run_all(
    suites: list[str],
    targets: list[Target],
    client_conf: Path,
    args: argparse.Namespace,
) -> dict[str, dict[str, SuiteRun]]:
    runs: dict[str, dict[str, SuiteRun]] = {}
    for suite in suites:
        runs[suite] = {}
        if args.parallel:
            with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
                futures = [pool.submit(run_one, suite, t, client_conf, args) for t in targets]
                done = [f.result() for f in futures]
        else:
            done = [run_one(suite, t, client_conf, args) for t in targets]
        for r in done:
            runs[suite][r.target] = r
            c = r.counts()
            extra = " TIMED OUT" if r.timed_out else ""
            log(
                f"  {suite:<18} {r.target:<9} {c['pass']:>3} pass {c['fail']:>3} fail "
                f"{c['skip']:>3} skip  ({r.seconds:.0f} s){extra}"
            )
    return runs


def regressions(runs: dict[str, dict[str, SuiteRun]]) -> list[dict[str, str]]:
    """Tests that pass on the stock share but not on Speicher's."""
    found = []
    for suite, by_target in runs.items():
        speicher, stock = by_target.get("speicher"), by_target.get("stock")
        if speicher is None or stock is None:
            continue
        for name, status in sorted(stock.status.items()):
            if status != "pass":
                continue
            theirs = speicher.status.get(name, "missing")
            if theirs in ("fail", "error", "missing"):
                found.append(
                    {
                        "suite": suite,
                        "test": name,
                        "speicher": theirs,
                        "stock": status,
                        "message": speicher.messages.get(name, ""),
                    }
                )
    return found


def report(runs: dict[str, dict[str, SuiteRun]], labels: list[str]) -> list[dict[str, str]]:
    header = f"{'suite':<18}" + "".join(f" | {label + ' pass/fail/skip':>26}" for label in labels)
    log("\n" + header)
    log("-" * len(header))
    totals = {label: {"pass": 0, "fail": 0, "skip": 0} for label in labels}
    for suite, by_target in runs.items():
        cells = []
        for label in labels:
            c = by_target[label].counts()
            for k in c:
                totals[label][k] += c[k]
            cells.append(f" | {c['pass']:>12} / {c['fail']:>4} / {c['skip']:>4}")
        log(f"{suite:<18}" + "".join(cells))
    log("-" * len(header))
    log(
        f"{'total':<18}"
        + "".join(f" | {t['pass']:>12} / {t['fail']:>4} / {t['skip']:>4}" for t in totals.values())
    )
    found = regressions(runs)
    if "speicher" in labels and "stock" in labels:
        log(f"\nRegressions (pass on stock, fail on Speicher): {len(found)}")
        for r in found:
            log(f"  {r['test']}: {r['speicher']}")
            for line in r["message"].splitlines()[:6]:
                log(f"      {line}")
        better = [
            name
            for by_target in runs.values()
            for name, s in by_target["speicher"].status.items()
            if s == "pass" and by_target["stock"].status.get(name) in ("fail", "error")
        ]
        if better:
            log(f"Pass on Speicher but fail on stock: {', '.join(sorted(better))}")
    return found


def save_logs(
    dest: Path,
    runs: dict[str, dict[str, SuiteRun]],
    daemon: Daemon,
    stock: StockSamba | None,
    acls: dict[str, str],
) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for label, text in acls.items():
        (dest / f"{label}-share.acl").write_text(text)
    for suite, by_target in runs.items():
        for label, r in by_target.items():
            (dest / f"{suite}.{label}.subunit").write_text(r.output)
    files = {
        "speicher-smb.conf": daemon.state_dir / "samba" / "smb.conf",
        "speicher-smbd.log": daemon.state_dir / "samba" / "smbd.log",
        "speicher-daemon.log": daemon.log_path,
    }
    if stock is not None:
        files |= {"stock-smb.conf": stock.conf, "stock-smbd.log": stock.log_path}
    for name, src in files.items():
        with contextlib.suppress(OSError):
            shutil.copyfile(src, dest / name)


@contextlib.contextmanager
def quiet_stderr(show: bool) -> Iterator[None]:
    """``Daemon.cleanup()`` prints the daemon's log for pytest; show it only when asked."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield
    if show:
        sys.stderr.write(buffer.getvalue())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suites", nargs="+", default=DEFAULT_SUITES, help="smbtorture suites")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--logs", type=Path, help="keep smbtorture output, smb.confs and logs here")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per suite and server")
    p.add_argument(
        "--test-timeout",
        type=float,
        default=60,
        help="seconds per test in the suites run test by test (--split)",
    )
    p.add_argument(
        "--split",
        nargs="*",
        default=SPLIT_SUITES,
        help="suites to run test by test (default: smb2.notify)",
    )
    p.add_argument("--profile", choices=["raid1", "single"], default="raid1")
    p.add_argument("--disk-size", default="2G", help="size of each virtual disk")
    p.add_argument(
        "--smb-options",
        type=json.loads,
        default={},
        help="SMB options of the Speicher share as JSON, e.g. '{\"recycle\": true}'",
    )
    p.add_argument(
        "--targets",
        default="speicher,stock",
        help="which servers to test: speicher,stock (default), speicher or stock",
    )
    p.add_argument("--parallel", action="store_true", help="run both servers at once")
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        default="stock",
        help="stock: a share with Samba's defaults (default); same-options: Speicher's share "
        "section on a stock [global]",
    )
    p.add_argument(
        "--stock-globals-from-speicher",
        action="store_true",
        help="copy Speicher's [global] options (not its paths or port) to the stock smbd",
    )
    p.add_argument(
        "--stock-global",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a [global] option of the stock smbd (to test a hypothesis)",
    )
    p.add_argument(
        "--stock-share",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an option of the stock share (to test a hypothesis)",
    )
    p.add_argument(
        "--stock-samba-dir-mode",
        type=lambda text: int(text, 8),
        default=0o755,
        metavar="MODE",
        help="mode of the directory holding the stock smbd's lock, state, cache... directories "
        "(default 0755 like Debian's /run/samba)",
    )
    p.add_argument(
        "--speicher-samba-dir-mode",
        type=lambda text: int(text, 8),
        metavar="MODE",
        help="chmod Speicher's state/samba directory after it started (to test a hypothesis)",
    )
    p.add_argument(
        "--torture-option",
        action="append",
        default=[],
        metavar="ARG",
        help="extra smbtorture argument, e.g. --torture-option=--option=torture:quick=yes",
    )
    p.add_argument("--verbose", action="store_true", help="print the daemon's log at the end")
    args = p.parse_args(argv)
    labels = args.targets.split(",")
    if not labels or set(labels) - {"speicher", "stock"}:
        p.error("--targets takes speicher, stock or both")
    args.labels = labels
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        log("bench/smbtorture.py needs root (loop devices, btrfs, Unix accounts, smbd)")
        return 2
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="speicher-test-smbtorture-", dir="/tmp"))
    base.chmod(0o755)
    stock_root = Path(tempfile.mkdtemp(prefix="speicher-smbtorture-stock-", dir="/tmp"))
    stock_root.chmod(0o755)
    daemon = Daemon(base)
    stock = StockSamba(stock_root, args.stock_samba_dir_mode)
    runs: dict[str, dict[str, SuiteRun]] = {}
    acls: dict[str, str] = {}
    crashed = True
    try:
        log(f"Speicher daemon in {base}, stock smbd in {stock_root}")
        daemon.start()
        speicher_target, subvolume = set_up_speicher(daemon, args)
        if args.speicher_samba_dir_mode is not None:  # a hypothesis test, not Speicher's own
            (daemon.state_dir / "samba").chmod(args.speicher_samba_dir_mode)
        speicher_text = daemon.api.get("/smb/config").text
        speicher_conf = parse_conf(speicher_text)
        if SHARE not in speicher_conf:
            raise RuntimeError(f"Speicher does not offer [{SHARE}]:\n{speicher_text}")

        set_up_stock(stock, speicher_conf, daemon, subvolume, args)
        acls = {
            "speicher": getfacl(speicher_conf[SHARE]["path"]),
            "stock": getfacl(subvolume["path"]),
        }

        targets = {"speicher": speicher_target, "stock": stock.target(SHARE)}
        chosen = [targets[label] for label in args.labels]
        for t in chosen:
            check_login(t, stock.client_conf)
        log(f"Speicher smbd on port {daemon.smb_port}, stock smbd on port {stock.port}")
        log(f"Running {len(args.suites)} suites against {', '.join(args.labels)}:")
        runs = run_all(args.suites, chosen, stock.client_conf, args)
        found = report(runs, args.labels)
        elapsed = time.monotonic() - started
        log(f"\nRun time: {elapsed / 60:.1f} min")
        if args.json:
            results = {
                "command": sys.argv,
                "baseline": args.baseline,
                "samba": run(["smbd", "--version"]).stdout.strip(),
                "seconds": round(elapsed),
                "suites": {
                    suite: {label: r.to_json() for label, r in by_target.items()}
                    for suite, by_target in runs.items()
                },
                "regressions": found,
                "speicher_smb_conf": speicher_text,
                "stock_smb_conf": stock.text,
                "acls": acls,
            }
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        crashed = False
        return 1 if found else 0
    finally:
        if args.logs:
            save_logs(args.logs, runs, daemon, stock, acls)
        stock.stop()
        stock.delete_user()
        with quiet_stderr(args.verbose or crashed):
            daemon.cleanup()
        shutil.rmtree(stock_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
