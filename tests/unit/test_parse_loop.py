"""``losetup --list --json --output NAME,BACK-FILE``, recorded with util-linux 2.38."""

from __future__ import annotations

import pytest

from speicher.system import loop

# Six loop devices: two pool disks, a replacement disk, a read-only one, a partitioned image and
# one whose backing file was deleted while attached.
LOSETUP = """\
{
   "loopdevices": [
      {
         "name": "/dev/loop1",
         "back-file": "/tmp/spc_cap/work2/b.img"
      },{
         "name": "/dev/loop4",
         "back-file": "/tmp/spc_cap/work2/ro.img"
      },{
         "name": "/dev/loop2",
         "back-file": "/tmp/spc_cap/work2/c.img"
      },{
         "name": "/dev/loop0",
         "back-file": "/tmp/spc_cap/work2/a.img"
      },{
         "name": "/dev/loop5",
         "back-file": "/tmp/spc_cap/work2/gone.img (deleted)"
      },{
         "name": "/dev/loop3",
         "back-file": "/tmp/spc_cap/work2/p.img"
      }
   ]
}
"""


def test_lists_devices_in_the_order_losetup_prints_them() -> None:
    devices = loop.parse_list(LOSETUP)
    assert [d.device for d in devices] == [
        "/dev/loop1",
        "/dev/loop4",
        "/dev/loop2",
        "/dev/loop0",
        "/dev/loop5",
        "/dev/loop3",
    ]
    assert devices[0] == loop.LoopDevice("/dev/loop1", "/tmp/spc_cap/work2/b.img")


def test_a_deleted_backing_file_keeps_its_path_without_the_marker() -> None:
    by_device = {d.device: d.backing_file for d in loop.parse_list(LOSETUP)}
    assert by_device["/dev/loop5"] == "/tmp/spc_cap/work2/gone.img"
    assert not any(f.endswith("(deleted)") for f in by_device.values())


# `losetup --list --json --output NAME,BACK-FILE -j FILE` when no device backs FILE
LOSETUP_NONE = """\
{
   "loopdevices": [

   ]
}
"""

# `losetup --list --json --output NAME,BACK-FILE /dev/loop7` on a free device
LOSETUP_FREE_DEVICE = """\
{
   "loopdevices": [
      {
         "name": "/dev/loop7",
         "back-file": null
      }
   ]
}
"""


@pytest.mark.parametrize("output", [LOSETUP_NONE, "", "\n"])
def test_no_loop_devices(output: str) -> None:
    assert loop.parse_list(output) == []


def test_a_device_without_backing_file_has_an_empty_path() -> None:
    assert loop.parse_list(LOSETUP_FREE_DEVICE) == [loop.LoopDevice("/dev/loop7", "")]
