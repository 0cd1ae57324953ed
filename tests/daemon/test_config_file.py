"""Settings from a TOML file given with --config, for the daemon and the CLI alike."""

from __future__ import annotations

import json

import pytest

from speicher_testing import ADMIN_PASSWORD, Daemon

pytestmark = pytest.mark.system


def test_serve_and_cli_read_the_config_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="speicher-test-", dir="/tmp"))
    daemon = Daemon(base)
    config = base / "speicher.toml"
    config.write_text(
        "[speicher]\n"
        f'state_dir = "{daemon.state_dir}"\n'
        f'mount_root = "{daemon.mount_root}"\n'
        'https_host = "127.0.0.1"\n'
        f"https_port = {daemon.https_port}\n"
        'http_host = "127.0.0.1"\n'
        f"http_port = {daemon.port}\n"
        f'account_prefix = "{daemon.prefix}"\n'
        f'admin_password = "{ADMIN_PASSWORD}"\n'
    )
    # nothing but the file says where things are
    daemon.env = {k: v for k, v in daemon.env.items() if not k.startswith("SPEICHER_")}
    try:
        daemon.start("--config", str(config))
        assert (daemon.state_dir / "speicher.db").exists()
        assert daemon.api.get("/system").json()["mount_root"] == str(daemon.mount_root)
        daemon.cli("--config", str(config), "disk", "create-virtual", "d1", "--size", "1G")
        disks = json.loads(daemon.cli("--config", str(config), "disk", "list", "--json").stdout)
        assert [d["name"] for d in disks if d["kind"] == "virtual"] == ["d1"]
        assert disks[-1]["backing_file"].startswith(str(daemon.state_dir))
        # the same through the environment variable
        listed = daemon.cli("disk", "list", "--json", env={"SPEICHER_CONFIG": str(config)})
        assert json.loads(listed.stdout) == disks
        bad = daemon.cli("--config", str(base / "missing.toml"), "disk", "list", check=False)
        assert bad.returncode == 2
        assert bad.stderr.strip() == f"error: config: file {base / 'missing.toml'} does not exist"
    finally:
        daemon.cleanup()
