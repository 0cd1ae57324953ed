"""smb.conf is a pure function of the model: these tests feed it plain values."""

from __future__ import annotations

from speicher.protocols.smb import render

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
    assert s["veto files"] == "/.speicher/"
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
