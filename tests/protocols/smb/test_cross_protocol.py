"""One file, three protocols: a file written over SMB (smbclient), WebDAV (curl) and SFTP
(OpenSSH sftp) reads back byte-identical over the other two, and all three have the same
owner, group, mode and ACL on the server, because Samba and ShareFS make files alike."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from smb_helpers import make_pool, make_share, make_user, password, run_smbclient

from speicher_testing import Daemon

pytestmark = pytest.mark.system

SIZE = 1_000_003  # no block size divides it


@pytest.fixture(scope="module")
def world(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    path = make_share(daemon, "mixed", {"alice": "rw"})
    r = daemon.api.patch("/shares/mixed", json={"webdav": True, "sftp": True})
    assert r.status_code == 200, r.text
    local = tmp_path_factory.mktemp("cross")
    return {"path": path, "local": local}


def sftp(daemon: Daemon, *commands: str) -> None:
    argv = [
        "sshpass",
        "-e",
        "sftp",
        "-q",
        "-F",
        "/dev/null",
        # before -b: sftp -b sets BatchMode (no passwords), and the first value given wins
        "-o",
        "BatchMode=no",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-P",
        str(daemon.sftp_port),
        "-b",
        "-",
        "alice@127.0.0.1",
    ]
    env = {**os.environ, "SSHPASS": password("alice")}
    result = subprocess.run(
        argv,
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def curl(daemon: Daemon, *args: str) -> None:
    argv = ["curl", "--silent", "--show-error", "--fail", "--user", f"alice:{password('alice')}"]
    result = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dav(daemon: Daemon, name: str) -> str:
    return f"{daemon.url}/dav/mixed/{name}"


def put(daemon: Daemon, protocol: str, local: Path, name: str) -> None:
    if protocol == "smb":
        out = run_smbclient(daemon, "mixed", f'put "{local}" "{name}"', user="alice")
        assert out.returncode == 0, out.stdout
    elif protocol == "webdav":
        curl(daemon, "-T", str(local), dav(daemon, name))
    else:
        sftp(daemon, f'put "{local}" "/mixed/{name}"')


def get(daemon: Daemon, protocol: str, name: str, local: Path) -> bytes:
    if protocol == "smb":
        out = run_smbclient(daemon, "mixed", f'get "{name}" "{local}"', user="alice")
        assert out.returncode == 0, out.stdout
    elif protocol == "webdav":
        curl(daemon, "-o", str(local), dav(daemon, name))
    else:
        sftp(daemon, f'get "/mixed/{name}" "{local}"')
    return local.read_bytes()


def server_side(path: Path) -> tuple[int, int, int, bytes]:
    st = path.stat()
    return st.st_uid, st.st_gid, st.st_mode, os.getxattr(path, "system.posix_acl_access")


PROTOCOLS = ("smb", "webdav", "sftp")


def test_each_protocol_reads_what_the_others_wrote_and_files_are_made_alike(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    local: Path = world["local"]
    share: Path = world["path"]
    made: dict[str, bytes] = {}
    for protocol in PROTOCOLS:
        data = os.urandom(SIZE)
        source = local / f"from-{protocol}.bin"
        source.write_bytes(data)
        put(daemon, protocol, source, f"by-{protocol}.bin")
        made[protocol] = data
    for writer, data in made.items():
        for reader in PROTOCOLS:
            back = get(daemon, reader, f"by-{writer}.bin", local / f"{writer}-via-{reader}.bin")
            assert back == data, f"written over {writer}, read over {reader}"
    facts = {p: server_side(share / f"by-{p}.bin") for p in PROTOCOLS}
    assert facts["webdav"] == facts["smb"], facts
    assert facts["sftp"] == facts["smb"], facts
