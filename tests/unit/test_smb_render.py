"""smb.conf is a pure function of the model: these tests feed it plain values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from speicher.protocols.smb import render
from speicher.protocols.smb.service import dfree_script
from speicher.system import run

DIRS = render.SambaDirs("/s/private", "/s/lock", "/s/state", "/s/cache", "/s/pid", "/s/ncalrpc")
GLOBAL = render.GlobalOptions(
    workgroup="OFFICE", server_name="NAS1", port=445, interfaces=[], dirs=DIRS
)


def share(**kwargs: object) -> render.ShareOptions:
    values: dict[str, object] = {
        "name": "finance",
        "path": "/srv/speicher/tank/finance",
        "snapshots": "/srv/speicher/tank/.snapshots/finance",
        "readers": ["+accounting"],
        "writers": ["alice"],
    }
    values.update(kwargs)
    return render.ShareOptions(**values)  # type: ignore[arg-type]


def test_global_section_never_offers_smb1_and_keeps_state_in_our_dirs() -> None:
    conf = render.smb_conf(GLOBAL, [share()])
    g = conf["global"]
    assert g["server min protocol"] == "SMB2_02"
    assert g["smb ports"] == "445"
    assert g["workgroup"] == "OFFICE" and g["netbios name"] == "NAS1"
    assert g["passdb backend"] == "tdbsam:/s/private/passdb.tdb"
    assert g["map to guest"] == "Never"
    assert g["nt acl support"] == "no"
    assert "interfaces" not in g and "username map" not in g
    assert list(conf) == ["global", "finance"]


def test_interfaces_and_username_map() -> None:
    glob = render.GlobalOptions("W", "", 4450, ["lo", "10.0.0.5/24"], DIRS, "/s/usermap")
    g = render.smb_conf(glob, [])["global"]
    assert g["interfaces"] == "lo 10.0.0.5/24" and g["bind interfaces only"] == "yes"
    assert g["username map"] == "/s/usermap"
    assert "netbios name" not in g


def test_grants_become_valid_users_and_write_list() -> None:
    s = render.smb_conf(GLOBAL, [share()])["finance"]
    assert s["read only"] == "yes"
    assert s["valid users"] == "+accounting alice"
    assert s["write list"] == "alice"
    assert s["guest ok"] == "no"
    assert s["veto files"] == "/.speicher/.speicher-upload-*/"  # and ShareFS's uploads
    assert s["follow symlinks"] == "no"  # as ShareFS: links are never followed
    assert s["vfs objects"] == "shadow_copy2"
    assert s["shadow:snapdir"] == "/srv/speicher/tank/.snapshots/finance"
    assert s["shadow:format"] == "@GMT-%Y.%m.%d-%H.%M.%S"
    assert "access based share enum" not in s and "server smb encrypt" not in s


def test_every_share_option() -> None:
    s = render.smb_conf(
        GLOBAL,
        [
            share(
                browseable=False,
                abe=True,
                recycle=True,
                mac=True,
                time_machine=True,
                time_machine_size=500 * 1024**3,
                encrypt=True,
                guest=True,
                dfree_command="/s/dfree/finance.sh",
            )
        ],
    )
    sec = s["finance"]
    assert sec["browseable"] == "no"
    assert sec["access based share enum"] == "yes" and sec["hide unreadable"] == "yes"
    assert sec["vfs objects"] == "catia fruit streams_xattr shadow_copy2 recycle"
    assert sec["recycle:repository"] == "#recycle"
    assert sec["fruit:time machine"] == "yes"
    assert sec["fruit:time machine max size"] == "512000M"
    assert sec["server smb encrypt"] == "required"
    assert sec["guest ok"] == "yes" and sec["valid users"].endswith("nobody")
    assert sec["dfree command"] == "/s/dfree/finance.sh"
    assert s["global"]["map to guest"] == "Bad User"
    assert s["global"]["fruit:aapl"] == "yes"


def test_text_form() -> None:
    text = render.to_text({"global": {"a": "1"}, "x": {"path": "/p"}})
    assert text == (
        "# Written by Speicher; changes here are overwritten.\n\n[global]\n    a = 1\n\n"
        "[x]\n    path = /p\n"
    )


def test_files_and_folders_are_made_so_that_grantees_can_write() -> None:
    g = render.smb_conf(GLOBAL, [share()])["global"]
    assert g["inherit acls"] == "yes"
    assert g["create mask"] == "0764" and g["directory mask"] == "0775"


HOSTILE = [
    "line\nroot preexec = /bin/sh",
    "cr\rx",
    "nul\0x",
    "tab\tx",
    "del\x7fx",
    "c1\x85x",
    "sep\u2028x",
    "para\u2029x",
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_to_text_refuses_control_characters_anywhere(bad: str) -> None:
    for conf in (
        {bad: {"path": "/p"}},
        {"x": {bad: "v"}},
        {"x": {"comment": bad}},
    ):
        with pytest.raises(ValueError, match="control character"):
            render.to_text(conf)


@pytest.mark.parametrize(
    "conf",
    [
        {"x]\n[evil": {"path": "/p"}},
        {"x]": {"path": "/p"}},
        {"": {"path": "/p"}},
        {"x": {"a = b": "c"}},
        {"x": {"comment": "ends in \\"}},
        {"x": {"comment": " padded"}},
        {"x": {"path": "/p/%h"}},
        {"x": {"comment": "%$(SPEICHER_ADMIN_PASSWORD)"}},
    ],
)
def test_to_text_refuses_what_samba_would_read_otherwise(conf: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ValueError):
        render.to_text(conf)


def test_snapshot_format_keeps_its_percent_signs() -> None:
    text = render.to_text(render.smb_conf(GLOBAL, [share()]))
    assert "    shadow:format = @GMT-%Y.%m.%d-%H.%M.%S\n" in text


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        (
            "hi %$(SPEICHER_ADMIN_PASSWORD) %h %v \\",
            "hi \uff05$(SPEICHER_ADMIN_PASSWORD) \uff05h \uff05v",
        ),
        ("100% sure", "100\uff05 sure"),
        ("  spaced  ", "spaced"),
        ("a \\ \\\\ ", "a"),
        ("back\\slash inside", "back\\slash inside"),
        ("two\nlines\u2028here\0", "two lines here"),
        ("Ärger über Öl; #1 [x]", "Ärger über Öl; #1 [x]"),
        ("", ""),
    ],
)
def test_free_text_becomes_a_harmless_comment(typed: str, shown: str) -> None:
    assert render.harmless_text(typed) == shown
    conf = render.smb_conf(GLOBAL, [share(comment=typed)])
    assert conf["finance"]["comment"] == shown
    text = render.to_text(conf)  # accepted as it is
    assert f"    comment = {shown}\n" in text


def test_usermap_maps_prefixed_accounts_and_refuses_other_names() -> None:
    assert render.usermap_text({"t1-bob": "bob", "t1-al.ice": "al.ice"}) == (
        "t1-al.ice = al.ice\nt1-bob = bob\n"
    )
    assert render.usermap_text({}) == "\n"
    for unix, client in [
        ("t1-x", "!root"),
        ("t1-x", "*"),
        ("t1-x", "@admins"),
        ("t1-x", "a b"),
        ("t1-x", '"x"'),
        ("t1-x", "x\nroot = *"),
        ("root = *\nt1-x", "x"),
        ("t1-x", ""),
    ]:
        with pytest.raises(ValueError, match="account name"):
            render.usermap_text({unix: client})


def test_dfree_script_quotes_its_path_for_the_shell(tmp_path: Path) -> None:
    figures = tmp_path / 'it\'s $(echo pwned) `id` "x"; y'
    figures.write_text("1000 500\n")
    script = dfree_script(figures)
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1000 500\n", "")
    with pytest.raises(ValueError, match="control character"):
        dfree_script(Path("/s/x\nreboot"))


def test_children_get_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEICHER_ADMIN_PASSWORD", "secret")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    env = run.minimal_env()
    assert env == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "HOME": "/root",
        "TZ": "Europe/Berlin",
    }
    shown = run.run(["env"]).stdout.splitlines()
    assert sorted(shown) == sorted(f"{k}={v}" for k, v in env.items())
    # without a TZ, the system's zone by its file: the same local time as no TZ at all
    monkeypatch.delenv("TZ")
    assert run.minimal_env()["TZ"] == ":/etc/localtime"
    local = ["date", "-d", "@1796627906", "+%F %T %Z"]
    unset = subprocess.run(local, capture_output=True, text=True, check=True, env={})
    assert run.run(local).stdout == unset.stdout
