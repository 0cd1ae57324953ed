"""The console's first steps and management pages over HTTPS as a browser sends their forms:
virtual disks, a pool (a job), a share with SMB, a user with a grant, then the pages for
pools (scrub), shares (protocols, grants) and users (disable). Every refusal comes back as the
page with each problem next to its field, and changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl

import httpx
import pytest
from alert_receivers import SMTP_PASSWORD, SMTP_USER, SmtpReceiver
from web_helpers import browser, csrf_of, log_in

from speicher_testing import Daemon
from world import make_user, password

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def boss(daemon: Daemon) -> str:
    """A second admin (the first one's password is what the test client logs in with)."""
    make_user(daemon, "boss", admin=True)
    return "boss"


def admin_client(daemon: Daemon, secret: str | None = None, lang: str = "en") -> httpx.Client:
    client = browser(daemon, lang)
    assert log_in(client, "boss", secret or password("boss")).status_code == 303
    return client


def send(client: httpx.Client, path: str, **form: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf_of(client, path), **form})


def test_first_steps_from_virtual_disks_to_a_user(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon)
    page = client.get("/console/setup/")
    assert page.status_code == 200 and "First steps" in page.text
    for name in ("v1", "v2"):
        r = send(client, "/console/setup/", action="virtual-disk", name=name, size="3G")
        assert r.status_code == 303 and r.headers["location"].endswith("?done=disk"), r.text
    r = send(
        client, "/console/setup/", action="pool", name="tank", profile="raid1",
        **{"disk:v1": "on", "disk:v2": "on"},
    )  # fmt: skip
    assert r.status_code == 303, r.text
    jobs = daemon.api.get("/jobs").json()
    pool_job = next(j for j in jobs if j["kind"] == "pool.create" and j["target"] == "tank")
    assert daemon.wait_job(pool_job)["state"] == "succeeded"
    assert daemon.api.get("/pools/tank").json()["profile"] == "raid1"
    r = send(client, "/console/setup/", action="share", name="docs", pool="tank", smb="on")
    assert r.status_code == 303, r.text
    assert daemon.api.get("/shares/docs").json()["smb"]["enabled"] is True
    r = send(
        client, "/console/setup/", action="user", name="anna", full_name="Anna A.",
        password=password("anna"), share="docs",
    )  # fmt: skip
    assert r.status_code == 303, r.text
    grants = daemon.api.get("/shares/docs").json()["grants"]
    assert {"principal": "user", "name": "anna", "access": "rw"} in grants
    # the admin's own password, twice the same
    r = send(client, "/console/setup/", action="password", password="new-pass-9x", again="other")
    assert r.status_code == 422 and "the two passwords differ" in r.text
    twice = {"password": "new-pass-9x1", "again": "new-pass-9x1"}
    r = send(client, "/console/setup/", action="password", **twice)
    assert r.status_code == 303
    assert log_in(browser(daemon), "boss", "new-pass-9x1").status_code == 303


def test_every_problem_of_a_form_is_shown_at_its_field(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    before = daemon.api.get("/users").json()
    r = send(
        client, "/console/users/", action="create", name="Bad Name!", password="short",
        email="not-an-address",
    )  # fmt: skip
    assert r.status_code == 422
    for field in ("name", "password", "email"):
        assert f'id="f-user-{field}" name="{field}"' in r.text
        assert f'aria-describedby="err-user-{field}"' in r.text, field
        assert f'id="err-user-{field}"' in r.text
    assert daemon.api.get("/users").json() == before  # nothing made
    r = send(client, "/console/shares/", action="create", name="docs", pool="tank")
    assert r.status_code == 422 and "already" in r.text.lower()  # a clash, in the service's words
    r = send(client, "/console/pools/", action="create", name="spare", profile="raid1")
    assert r.status_code == 422 and 'id="err-disks"' in r.text
    # a German page: every problem in German, the service's (its values as typed) and pydantic's
    german = admin_client(daemon, "new-pass-9x1", "de")
    r = send(
        german, "/console/users/", action="create", name="Bad Name!", password="short",
        email="not-an-address",
    )  # fmt: skip
    assert r.status_code == 422 and "must be" not in r.text
    assert "muss mindestens 8 Zeichen haben" in r.text  # passwords.check's f-string
    assert "Zeichen haben: Buchstaben (gespeichert in Kleinbuchstaben)" in r.text  # names'
    assert "ist keine E-Mail-Adresse: " in r.text  # the model's own check (why: in English)
    r = send(german, "/console/shares/", action="create", name="docs", pool="tank")
    assert r.status_code == 422 and "Freigabe &#39;docs&#39; gibt es schon" in r.text
    r = send(
        german, "/console/shares/", action="protocols", share="docs", smb="on", recycle="on",
        recycle_days="0", quota="1G",
    )  # fmt: skip
    assert r.status_code == 422 and "muss mindestens 1 sein" in r.text  # pydantic's ge=1
    assert "Input should" not in r.text


def test_pools_shares_and_users_pages(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    page = client.get("/console/pools/")
    assert page.status_code == 200 and "tank" in page.text and "v1" in page.text
    assert "Destroy pool tank? Its 1 share (docs)" in page.text  # the confirmation says what goes
    assert send(client, "/console/pools/", action="scrub", pool="tank").status_code == 303
    scrub = next(j for j in daemon.api.get("/jobs").json() if j["kind"] == "pool.scrub")
    assert daemon.wait_job(scrub)["state"] == "succeeded"
    r = send(
        client, "/console/shares/", action="protocols", share="docs", smb="on", webdav="on",
        quota="1G",
    )  # fmt: skip
    assert r.status_code == 303, r.text
    share = daemon.api.get("/shares/docs").json()
    assert share["webdav"] is True and share["smb"]["enabled"] is True and share["quota"] == 1 << 30
    assert share["smb"]["recycle"] is False and share["compression"] == ""
    r = send(
        client, "/console/shares/", action="protocols", share="docs", smb="on", recycle="on",
        mac="on", compression="zstd", sync="standard", quota="1G",
    )  # fmt: skip
    assert r.status_code == 303, r.text
    share = daemon.api.get("/shares/docs").json()
    assert share["smb"]["recycle"] is True and share["smb"]["mac"] is True
    assert share["compression"] == "zstd" and share["sync"] == "standard"
    assert share["webdav"] is False  # not ticked this time: off
    r = send(
        client, "/console/shares/", action="protocols", share="docs", smb="on", recycle="on",
        recycle_days="0", time_machine_size="lots", quota="1G",
    )  # fmt: skip
    assert r.status_code == 422 and 'aria-describedby="err-recycle-days-docs"' in r.text
    assert (
        daemon.api.get("/shares/docs").json()["smb"]["recycle_days"] == share["smb"]["recycle_days"]
    )
    r = send(
        client, "/console/shares/", action="protocols", share="docs", smb="on", recycle="on",
        recycle_days="30", time_machine_size="lots", quota="1G",
    )  # fmt: skip
    assert r.status_code == 422 and 'aria-describedby="err-tm-size-docs"' in r.text
    r = send(
        client, "/console/shares/", action="protocols", share="docs", smb="on", recycle="on",
        recycle_days="30", time_machine="on", time_machine_size="500M", guest="on", quota="1G",
        compression="zstd", sync="standard",
    )  # fmt: skip
    assert r.status_code == 303, r.text
    smb = daemon.api.get("/shares/docs").json()["smb"]
    assert (smb["recycle_days"], smb["time_machine_size"], smb["guest"]) == (30, 500 << 20, True)
    r = send(
        client, "/console/shares/", action="protocols", share="docs", smb="on", recycle="on",
        compression="zstd", sync="standard", quota="1G",
    )  # fmt: skip
    smb = daemon.api.get("/shares/docs").json()["smb"]
    assert (smb["recycle_days"], smb["time_machine_size"], smb["guest"]) == (30, None, False)
    anna = {"share": "docs", "principal": "user", "name": "anna"}
    r = send(client, "/console/shares/", action="revoke", **anna)
    assert r.status_code == 303 and daemon.api.get("/shares/docs").json()["grants"] == []
    r = send(client, "/console/shares/", action="grant", share="docs", who="user:anna", access="ro")
    assert r.status_code == 303
    assert daemon.api.get("/shares/docs").json()["grants"][0]["access"] == "ro"
    r = send(client, "/console/users/", action="disable", user="anna")
    assert r.status_code == 303 and daemon.api.get("/users/anna").json()["enabled"] is False
    assert log_in(browser(daemon), "anna", password("anna")).status_code == 401
    # a user is no admin: the pages and their forms are refused
    make_user(daemon, "otto")
    otto = browser(daemon)
    assert log_in(otto, "otto", password("otto")).status_code == 303
    assert otto.get("/console/users/").status_code == 403


def test_snapshots_page_takes_locks_clones_and_rolls_back(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    docs = daemon.mount_root / "tank" / "docs"
    (docs / "memo.txt").write_text("before\n")
    page = "/console/snapshots/?share=docs"
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()
    assert send(client, page, action="create", share="docs", until=tomorrow).status_code == 303
    assert send(client, page, action="create", share="docs", until="soon").status_code == 422
    snaps = daemon.api.get("/shares/docs/snapshots").json()
    assert len(snaps) == 1 and snaps[0]["locked_until"] is not None
    name = snaps[0]["name"]
    listing = client.get(page)
    assert name in listing.text and "Delete snapshot" not in listing.text  # locked: no delete
    refused = send(client, page, action="delete", share="docs", name=name)
    assert refused.status_code == 422 and len(daemon.api.get("/shares/docs/snapshots").json()) == 1
    (docs / "memo.txt").write_text("after\n")
    r = send(client, page, action="rollback", share="docs", name=name)
    assert r.status_code == 303 and (docs / "memo.txt").read_text() == "before\n"
    r = send(client, page, action="clone", share="docs", name=name, to="docs-copy")
    assert r.status_code == 303, r.text
    assert (daemon.mount_root / "tank" / "docs-copy" / "memo.txt").read_text() == "before\n"


def test_events_filter_and_alert_settings_with_a_test_message(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    page = client.get("/console/events/", params={"kind": "pool."})
    assert page.status_code == 200 and "pool tank created" in page.text
    assert "user boss created" not in page.text
    warnings = client.get("/console/events/", params={"level": "error"})
    assert "pool tank created" not in warnings.text
    words = client.get("/console/events/", params={"q": "ANNA"})
    assert "user anna created" in words.text and "pool tank created" not in words.text
    refused = send(client, "/console/alerts/", action="test")
    assert refused.status_code == 422 and "no alert channel is configured" in refused.text
    with SmtpReceiver() as smtp:
        r = send(
            client, "/console/alerts/", action="save", smtp_host="127.0.0.1",
            smtp_port=str(smtp.port), smtp_username=SMTP_USER, smtp_password=SMTP_PASSWORD,
            mail_from="nas@example.com", mail_to="it@example.com, boss@example.com",
            min_level="warning",
        )  # fmt: skip
        assert r.status_code == 303, r.text
        settings = daemon.api.get("/alerts/settings").json()
        assert settings["mail_to"] == ["it@example.com", "boss@example.com"]
        assert settings["smtp_password_set"] is True
        r = send(client, "/console/alerts/", action="test")
        assert r.status_code == 303, r.text
        assert len(smtp.mails) == 1


def test_system_page_certificate_and_smb_settings(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    before = daemon.api.get("/system/certificate").json()["sha256"]
    page = client.get("/console/system/")
    assert page.status_code == 200 and before in page.text
    bad = send(client, "/console/system/", action="certificate", certificate="junk", key="junk")
    assert bad.status_code == 422 and 'aria-describedby="err-certificate"' in bad.text
    assert daemon.api.get("/system/certificate").json()["sha256"] == before  # unchanged
    assert send(client, "/console/system/", action="self-signed").status_code == 303
    after = daemon.api.get("/system/certificate").json()["sha256"]
    assert after != before
    # new connections get the new certificate at once
    served = ssl.get_server_certificate(("127.0.0.1", daemon.https_port))
    der = ssl.PEM_cert_to_DER_cert(served)
    assert hashlib.sha256(der).hexdigest().upper() == after.upper().replace(":", "")
    r = send(
        client,
        "/console/system/",
        action="smb",
        workgroup="BUERO",
        server_name="",
        signing="required",
    )
    assert r.status_code == 303, r.text
    smb = daemon.api.get("/smb").json()
    assert smb["workgroup"] == "BUERO" and smb["signing"] == "required"
    r = send(client, "/console/system/", action="smb", workgroup="bad group\\x", signing="default")
    assert r.status_code == 422 and daemon.api.get("/smb").json()["workgroup"] == "BUERO"
    port = daemon.api.get("/smb").json()["port"]
    r = send(client, "/console/system/", action="smb", workgroup="BUERO", port="70000")
    assert r.status_code == 422 and 'aria-describedby="err-smb-port"' in r.text
    assert daemon.api.get("/smb").json()["port"] == port


def test_the_time_zone_is_chosen_and_times_are_shown_in_it(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    page = client.get("/console/system/")
    assert "<option selected>UTC</option>" in page.text
    bad = send(client, "/console/system/", action="time-zone", time_zone="Mars/Olympus")
    assert bad.status_code == 422 and "is not a time zone" in bad.text
    assert daemon.api.get("/system/preferences").json() == {"time_zone": "UTC"}
    r = send(client, "/console/system/", action="time-zone", time_zone="Asia/Kathmandu")
    assert r.status_code == 303, r.text
    assert daemon.api.get("/system/preferences").json() == {"time_zone": "Asia/Kathmandu"}
    # the newest event's time, in UTC from the API and at +05:45 on the events page
    newest = daemon.api.get("/events", params={"limit": 1}).json()[0]
    moment = dt.datetime.fromisoformat(newest["time"].replace("Z", "+00:00"))
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=45)))
    events = client.get("/console/events/").text
    assert local.strftime("%-I:%M:%S") in events or local.strftime("%H:%M:%S") in events
    r = daemon.api.patch("/system/preferences", json={"time_zone": "UTC"})
    assert r.status_code == 200 and r.json() == {"time_zone": "UTC"}


def test_disks_are_added_and_replaced_with_their_jobs(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    for name in ("v3", "v4"):
        r = send(client, "/console/pools/", action="virtual-disk", name=name, size="3G")
        assert r.status_code == 303, r.text
    r = send(client, "/console/pools/", action="add-disk", pool="tank", disk="v3")
    assert r.status_code == 303 and r.headers["location"].endswith("done=disk-job")
    job = next(j for j in daemon.api.get("/jobs").json() if j["kind"] == "pool.add-disk")
    assert daemon.wait_job(job)["state"] == "succeeded"
    assert {d["disk"] for d in daemon.api.get("/pools/tank").json()["disks"]} == {"v1", "v2", "v3"}
    r = send(client, "/console/pools/", action="replace-disk", pool="tank", old="v3", new="v4")
    assert r.status_code == 303, r.text
    job = next(j for j in daemon.api.get("/jobs").json() if j["kind"] == "pool.replace-disk")
    assert daemon.wait_job(job)["state"] == "succeeded"
    assert {d["disk"] for d in daemon.api.get("/pools/tank").json()["disks"]} == {"v1", "v2", "v4"}
    refused = send(client, "/console/pools/", action="add-disk", pool="tank", disk="v1")
    assert refused.status_code == 422  # a disk of the pool already: the service says why


def test_snapshot_schedules_are_made_run_and_deleted(daemon: Daemon, boss: str) -> None:
    client = admin_client(daemon, "new-pass-9x1")
    page = "/console/snapshots/?share=docs"
    bad = send(client, page, action="policy", share="docs", name="hourly", schedule="every hour")
    assert bad.status_code == 422 and daemon.api.get("/shares/docs/policies").json() == []
    r = send(
        client, page, action="policy", share="docs", name="hourly", schedule="0 * * * *",
        keep_hourly="24", keep_daily="7",
    )  # fmt: skip
    assert r.status_code == 303, r.text
    policies = daemon.api.get("/shares/docs/policies").json()
    assert [(p["name"], p["keep_hourly"], p["keep_daily"]) for p in policies] == [("hourly", 24, 7)]
    # changed: a wrong schedule changes nothing, a right one all that was sent
    keep = {"keep_hourly": "24", "keep_daily": "7", "enabled": "on"}
    bad = send(client, page, action="policy-edit", share="docs", name="hourly",
               schedule="at noon", lock_days="5000", **keep)  # fmt: skip
    assert bad.status_code == 422 and bad.text.count('class="field-error"') == 2, bad.text
    assert daemon.api.get("/shares/docs/policies").json()[0]["schedule"] == "0 * * * *"
    r = send(client, page, action="policy-edit", share="docs", name="hourly",
             schedule="30 2 * * *", keep_weekly="4", lock_days="3", **keep)  # fmt: skip
    assert r.status_code == 303, r.text
    changed = daemon.api.get("/shares/docs/policies").json()[0]
    assert (changed["schedule"], changed["keep_weekly"], changed["lock_days"]) == (
        "30 2 * * *",
        4,
        3,
    )
    assert changed["enabled"] is True and changed["keep_hourly"] == 24
    paused = send(client, page, action="policy-edit", share="docs", name="hourly", keep_hourly="24")
    assert (
        paused.status_code == 303
        and daemon.api.get("/shares/docs/policies").json()[0]["enabled"] is False
    )
    assert "paused" in client.get(page).text
    before = len(daemon.api.get("/shares/docs/snapshots").json())
    assert send(client, page, action="policy-run", share="docs", name="hourly").status_code == 303
    assert len(daemon.api.get("/shares/docs/snapshots").json()) == before + 1
    r = send(client, page, action="policy-delete", share="docs", name="hourly")
    assert r.status_code == 303 and daemon.api.get("/shares/docs/policies").json() == []
