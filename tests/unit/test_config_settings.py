"""Loading settings: defaults, a TOML file, then ``SPEICHER_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speicher.config import load_settings
from speicher.errors import InvalidInput, Problem


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SPEICHER_* variable of the calling shell may leak into a test."""
    for name in list(os.environ):
        if name.startswith("SPEICHER_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings()
    assert settings.state_dir == Path("/var/lib/speicher")
    assert settings.mount_root == Path("/srv/speicher")
    assert (settings.https_host, settings.https_port) == ("0.0.0.0", 8443)  # noqa: S104
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)  # this machine only
    assert settings.tls_dir == Path("/var/lib/speicher/tls")
    assert settings.uid_base == 20000
    assert settings.account_prefix == ""
    assert settings.db_url == "sqlite:////var/lib/speicher/speicher.db"
    assert settings.socket_path == Path("/var/lib/speicher/speicher.sock")
    assert settings.disks_dir == Path("/var/lib/speicher/disks")
    assert settings.primary_group == "speicher"


def test_values_from_a_speicher_table(tmp_path: Path) -> None:
    config = write(
        tmp_path / "speicher.toml",
        '[speicher]\nstate_dir = "/tmp/sp/state"\nhttps_port = 9000\naccount_prefix = "t1"\n'
        "monitor_interval = 0.5\n",
    )
    settings = load_settings(config)
    assert settings.state_dir == Path("/tmp/sp/state")
    assert settings.https_port == 9000
    assert settings.monitor_interval == 0.5
    assert settings.primary_group == "t1speicher"
    assert settings.socket_path == Path("/tmp/sp/state/speicher.sock")
    assert settings.mount_root == Path("/srv/speicher")  # not in the file: default


def test_values_from_a_flat_file(tmp_path: Path) -> None:
    config = write(tmp_path / "flat.toml", 'mount_root = "/tmp/sp/mnt"\nuid_base = 30000\n')
    settings = load_settings(str(config))
    assert settings.mount_root == Path("/tmp/sp/mnt")
    assert settings.uid_base == 30000


def test_file_named_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "env.toml", "[speicher]\nhttps_port = 9001\n")
    monkeypatch.setenv("SPEICHER_CONFIG", str(config))
    assert load_settings().https_port == 9001


def test_an_explicit_file_wins_over_the_environment_s_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEICHER_CONFIG", str(write(tmp_path / "a.toml", "https_port = 1111\n")))
    assert load_settings(write(tmp_path / "b.toml", "https_port = 2222\n")).https_port == 2222


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(
        tmp_path / "speicher.toml",
        '[speicher]\nstate_dir = "/tmp/sp/file"\nhttps_port = 9000\nlog_level = "DEBUG"\n',
    )
    monkeypatch.setenv("SPEICHER_HTTPS_PORT", "9100")
    monkeypatch.setenv("SPEICHER_STATE_DIR", "/tmp/sp/env")
    settings = load_settings(config)
    assert settings.https_port == 9100
    assert settings.state_dir == Path("/tmp/sp/env")
    assert settings.log_level == "DEBUG"  # not overridden: from the file


def test_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEICHER_DATABASE_URL", "postgresql://db/speicher")
    monkeypatch.setenv("SPEICHER_UID_BASE", "40000")
    settings = load_settings()
    assert settings.db_url == "postgresql://db/speicher"
    assert settings.uid_base == 40000


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(InvalidInput) as info:
        load_settings(path)
    assert info.value.problems == [Problem("config", f"file {path} does not exist")]
    assert info.value.message == f"config: file {path} does not exist"


def test_a_file_that_is_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", "[speicher\nhttps_port = \n")
    with pytest.raises(InvalidInput) as info:
        load_settings(path)
    (problem,) = info.value.problems
    assert problem.field == "config"
    assert problem.reason.startswith(f"{path} is not valid TOML: ")


def test_a_directory_given_as_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_settings(tmp_path)
    assert [p.field for p in info.value.problems] == ["config"]


@pytest.mark.parametrize("field", ["state_dir", "mount_root"])
def test_a_relative_path_in_the_file(tmp_path: Path, field: str) -> None:
    path = write(tmp_path / "rel.toml", f'[speicher]\n{field} = "var/lib/speicher"\n')
    with pytest.raises(InvalidInput) as info:
        load_settings(path)
    (problem,) = info.value.problems
    assert problem.field == field
    assert "must be an absolute path" in problem.reason


def test_a_relative_path_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEICHER_STATE_DIR", "state")
    with pytest.raises(InvalidInput) as info:
        load_settings()
    assert [p.field for p in info.value.problems] == ["state_dir"]
    assert "must be an absolute path" in info.value.message


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path / "many.toml",
        'https_port = "eighty"\nuid_base = 5\naccount_prefix = "Way-Too-Long"\nbogus = 1\n',
    )
    with pytest.raises(InvalidInput) as info:
        load_settings(path)
    fields = sorted(p.field for p in info.value.problems)
    assert fields == ["account_prefix", "bogus", "https_port", "uid_base"]
    assert info.value.status == 422


def test_the_old_api_settings_are_refused_with_their_new_names(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_settings(write(tmp_path / "old.toml", 'api_host = "0.0.0.0"\napi_port = 8080\n'))
    assert [p.field for p in info.value.problems] == ["api_host", "api_port"]
    assert "https_port (HTTPS) or http_port (plain HTTP)" in info.value.message


def test_plain_http_can_be_turned_off_but_https_cannot(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path / "off.toml", "http_port = 0\n")).http_port == 0
    with pytest.raises(InvalidInput) as info:
        load_settings(write(tmp_path / "nossl.toml", "https_port = 0\n"))
    assert [p.field for p in info.value.problems] == ["https_port"]


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_out_of_range(tmp_path: Path, port: int) -> None:
    with pytest.raises(InvalidInput) as info:
        load_settings(write(tmp_path / "port.toml", f"https_port = {port}\n"))
    assert [p.field for p in info.value.problems] == ["https_port"]


def test_a_bad_environment_value_is_reported_by_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEICHER_MONITOR_INTERVAL", "0")
    with pytest.raises(InvalidInput) as info:
        load_settings()
    assert [p.field for p in info.value.problems] == ["monitor_interval"]


def test_sftp_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.sftp_host, settings.sftp_port) == ("0.0.0.0", 2222)  # noqa: S104
    config = write(tmp_path / "sftp.toml", 'sftp_host = "::"\nsftp_port = 0\n')  # 0: off
    assert (load_settings(config).sftp_host, load_settings(config).sftp_port) == ("::", 0)
    monkeypatch.setenv("SPEICHER_SFTP_PORT", "2022")
    assert load_settings(config).sftp_port == 2022
    for port in ("-1", "65536"):
        monkeypatch.setenv("SPEICHER_SFTP_PORT", port)
        with pytest.raises(InvalidInput) as info:
            load_settings()
        assert [p.field for p in info.value.problems] == ["sftp_port"]


def test_metrics_allow_takes_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().metrics_allow == []
    monkeypatch.setenv("SPEICHER_METRICS_ALLOW", '["10.0.0.5", "192.168.1.0/24", "fd00::/64"]')
    assert load_settings().metrics_allow == ["10.0.0.5", "192.168.1.0/24", "fd00::/64"]
    monkeypatch.setenv("SPEICHER_METRICS_ALLOW", '["10.0.0.300/8"]')
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert exc.value.problems[0].field == "metrics_allow"
