"""``smartctl -H -j`` (JSON) parsing. The loop device output was recorded here with
smartmontools 7.3; the others are real drives' output as kept in the test data of the
Scrutiny project (AnalogJ/scrutiny, webapp/backend/pkg/models/testdata), shortened to the
fields ``-H`` prints: a failing Hitachi disk behind a USB bridge, a healthy NVMe SSD and a
disk that could not be opened."""

from __future__ import annotations

from speicher.system import smart

LOOP = """\
{
  "json_format_version": [
    1,
    0
  ],
  "smartctl": {
    "version": [
      7,
      3
    ],
    "svn_revision": "5338",
    "platform_info": "x86_64-linux-6.18.44-fc-v657",
    "build_info": "(local build)",
    "argv": [
      "smartctl",
      "-H",
      "-j",
      "/dev/loop1"
    ],
    "messages": [
      {
        "string": "/dev/loop1: Unable to detect device type",
        "severity": "error"
      }
    ],
    "exit_status": 1
  },
  "local_time": {
    "time_t": 1795966959,
    "asctime": "Sun Nov 29 15:42:39 2026 UTC"
  }
}
"""

# smart-fail2.json: exit status 216 = DISK FAILING (8) + prefail attribute below threshold
# (16) + errors in the error log (64) + self-test errors (128)
FAILING = """\
{
  "json_format_version": [1, 0],
  "smartctl": {
    "version": [7, 1],
    "svn_revision": "5022",
    "platform_info": "x86_64-linux-5.7.2-arch1-1",
    "build_info": "(local build)",
    "argv": ["smartctl", "-a", "--json", "/dev/sdc"],
    "exit_status": 216
  },
  "device": {
    "name": "/dev/sdc",
    "info_name": "/dev/sdc [USB JMicron]",
    "type": "usbjmicron",
    "protocol": "ATA"
  },
  "model_family": "Hitachi Deskstar 7K1000.D",
  "model_name": "Hitachi HDS721050DLE630",
  "local_time": {"time_t": 1637039918, "asctime": "Wed Jul  8 15:48:23 2020 CEST"},
  "smart_status": {"passed": false}
}
"""

# smart-nvme-failed.json (named for a failed attribute check; the overall verdict passed)
NVME = """\
{
  "json_format_version": [1, 0],
  "smartctl": {
    "version": [7, 0],
    "svn_revision": "4883",
    "platform_info": "x86_64-linux-5.13.0-40-generic",
    "build_info": "(local build)",
    "argv": ["smartctl", "-x", "-j", "/dev/nvme0"],
    "exit_status": 0
  },
  "device": {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
  "model_name": "Samsung SSD 970 EVO 500GB",
  "smart_status": {"passed": true, "nvme": {"value": 0}}
}
"""

# smart-fail.json
OPEN_FAILED = (
    '{"json_format_version": [1, 0], "smartctl": {"version": [7, 0], "svn_revision": "4883", '
    '"platform_info": "x86_64-w64-mingw32-win7-sp1", "build_info": "(sf-7.0-1)", '
    '"argv": ["smartctl", "--all", "-j", "/dev/sda"], "messages": [{"string": '
    '"Smartctl open device: /dev/sda failed: \\\\\\\\.\\\\PhysicalDrive0: Open failed, '
    'Error=5", "severity": "error"}], "exit_status": 2}}'
)


def test_a_failing_disk_fails() -> None:
    verdict = smart.parse_health(FAILING)
    assert verdict.status == "failed"
    assert "FAILED" in verdict.message


def test_a_healthy_disk_passes() -> None:
    assert smart.parse_health(NVME) == smart.SmartHealth(
        "passed", "SMART overall-health self-assessment: PASSED"
    )


def test_no_verdict_is_unknown_with_smartctls_reason() -> None:
    loop = smart.parse_health(LOOP)
    assert loop == smart.SmartHealth("unknown", "/dev/loop1: Unable to detect device type")
    failed_open = smart.parse_health(OPEN_FAILED)
    assert failed_open.status == "unknown"
    assert "Open failed" in failed_open.message
    assert smart.parse_health("").status == "unknown"


def test_the_failing_bit_alone_means_failed() -> None:
    text = '{"smartctl": {"exit_status": 8}}'
    assert smart.parse_health(text).status == "failed"


def test_only_physical_devices_have_smart() -> None:
    for device in ("/dev/loop3", "/dev/md127", "/dev/md/speicher-tank", "/dev/dm-0", "/dev/zram0"):
        assert not smart.has_smart(device), device
    assert not smart.has_smart("")
    for device in ("/dev/sda", "/dev/sdb1", "/dev/nvme0n1", "/dev/vda"):
        assert smart.has_smart(device), device


def test_temperature_where_the_disk_tells() -> None:
    """``-A`` adds smartctl's ``temperature`` object (smartmontools 7.0 or later); a disk
    without it, or a value that is no whole number, has no temperature."""
    with_temperature = NVME.replace(
        '"smart_status"', '"temperature": {"current": 38}, "smart_status"'
    )
    assert smart.parse_health(with_temperature) == smart.SmartHealth(
        "passed", "SMART overall-health self-assessment: PASSED", 38
    )
    assert smart.parse_health(NVME).temperature is None
    odd = NVME.replace('"smart_status"', '"temperature": {"current": true}, "smart_status"')
    assert smart.parse_health(odd).temperature is None
