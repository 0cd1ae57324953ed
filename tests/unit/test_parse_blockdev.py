"""``lsblk --json --bytes`` and ``blkid --probe --output export``, recorded with util-linux 2.38
on a machine whose disks are virtio (no model or serial) and loop devices."""

from __future__ import annotations

import pytest

from speicher.system import blockdev

# lsblk --json --bytes --output NAME,PATH,SIZE,TYPE,MODEL,SERIAL,MOUNTPOINTS,RO
# (loop0 holds a mounted btrfs, loop1 the second disk of the same RAID1, so it shows no mount)
LSBLK = """\
{
   "blockdevices": [
      {
         "name": "loop0",
         "path": "/dev/loop0",
         "size": 1073741824,
         "type": "loop",
         "model": null,
         "serial": null,
         "mountpoints": [
             "/tmp/spc_cap/work/mnt"
         ],
         "ro": false
      },{
         "name": "loop1",
         "path": "/dev/loop1",
         "size": 1073741824,
         "type": "loop",
         "model": null,
         "serial": null,
         "mountpoints": [
             null
         ],
         "ro": false
      },{
         "name": "zram0",
         "path": "/dev/zram0",
         "size": 0,
         "type": "disk",
         "model": null,
         "serial": null,
         "mountpoints": [
             null
         ],
         "ro": false
      },{
         "name": "vda",
         "path": "/dev/vda",
         "size": 274877906944,
         "type": "disk",
         "model": null,
         "serial": null,
         "mountpoints": [
             "/"
         ],
         "ro": false
      }
   ]
}
"""

# a loop device attached with `losetup --read-only`
LSBLK_READ_ONLY = """\
{
   "blockdevices": [
      {
         "name": "loop4",
         "path": "/dev/loop4",
         "size": 67108864,
         "type": "loop",
         "model": null,
         "serial": null,
         "mountpoints": [
             null
         ],
         "ro": true
      }
   ]
}
"""

# The recording machine's kernel has no partition-table support, so this tree of a SATA disk
# with partitions is written in lsblk's JSON layout rather than recorded: lsblk pads MODEL
# with blanks, and a disk with several mounts (btrfs subvolumes) lists each.
LSBLK_PARTITIONED = """\
{
   "blockdevices": [
      {
         "name": "sda",
         "path": "/dev/sda",
         "size": 4000787030016,
         "type": "disk",
         "model": "WDC WD40EFRX-68N32N0   ",
         "serial": "WD-WCC7K1234567",
         "mountpoints": [
             null
         ],
         "ro": false,
         "children": [
            {
               "name": "sda1",
               "path": "/dev/sda1",
               "size": 536870912,
               "type": "part",
               "model": null,
               "serial": null,
               "mountpoints": [
                   "/boot/efi"
               ],
               "ro": false
            },{
               "name": "sda2",
               "path": "/dev/sda2",
               "size": 4000248610816,
               "type": "part",
               "model": null,
               "serial": null,
               "mountpoints": [
                   "/srv/data", "/srv/snap"
               ],
               "ro": false
            }
         ]
      }
   ]
}
"""


def test_lsblk_top_level_devices() -> None:
    devices = blockdev.parse_lsblk(LSBLK)
    assert [d.path for d in devices] == ["/dev/loop0", "/dev/loop1", "/dev/zram0", "/dev/vda"]
    assert devices[0] == blockdev.BlockDevice(
        name="loop0",
        path="/dev/loop0",
        size=1073741824,
        type="loop",
        model="",
        serial="",
        mountpoints=["/tmp/spc_cap/work/mnt"],
        parent="",
        read_only=False,
        children=[],
    )
    assert devices[3].size == 274877906944
    assert devices[3].type == "disk"
    assert devices[3].mountpoints == ["/"]


def test_lsblk_null_mountpoint_means_not_mounted() -> None:
    by_path = {d.path: d for d in blockdev.parse_lsblk(LSBLK)}
    assert by_path["/dev/loop1"].mountpoints == []
    assert by_path["/dev/zram0"].mountpoints == []
    assert by_path["/dev/zram0"].size == 0


def test_lsblk_read_only_flag() -> None:
    (device,) = blockdev.parse_lsblk(LSBLK_READ_ONLY)
    assert device.read_only is True
    assert device.size == 64 * 1024**2


def test_lsblk_flattens_partitions_after_their_disk() -> None:
    devices = blockdev.parse_lsblk(LSBLK_PARTITIONED)
    assert [(d.path, d.parent) for d in devices] == [
        ("/dev/sda", ""),
        ("/dev/sda1", "/dev/sda"),
        ("/dev/sda2", "/dev/sda"),
    ]
    disk = devices[0]
    assert disk.children == ["/dev/sda1", "/dev/sda2"]
    assert disk.model == "WDC WD40EFRX-68N32N0"
    assert disk.serial == "WD-WCC7K1234567"
    assert devices[2].mountpoints == ["/srv/data", "/srv/snap"]
    assert devices[2].children == []


def test_lsblk_without_devices() -> None:
    assert blockdev.parse_lsblk('{\n   "blockdevices": [\n   ]\n}\n') == []


# blkid --probe --output export /dev/loop0 (first disk of a two-disk btrfs RAID1)
BLKID_BTRFS = """\
DEVNAME=/dev/loop0
LABEL=cappool
UUID=01a060c3-6165-4ba7-8ae9-15ac93493654
UUID_SUB=a9490836-8b79-4221-ab91-2526a8d857ab
BLOCK_SIZE=4096
TYPE=btrfs
USAGE=filesystem
"""

# the same on a disk carrying only an MBR partition table
BLKID_MBR = """\
DEVNAME=/dev/loop0
PTUUID=5e1c4e12
PTTYPE=dos
"""


def test_blkid_export_of_a_btrfs_member() -> None:
    assert blockdev.parse_export(BLKID_BTRFS) == {
        "DEVNAME": "/dev/loop0",
        "LABEL": "cappool",
        "UUID": "01a060c3-6165-4ba7-8ae9-15ac93493654",
        "UUID_SUB": "a9490836-8b79-4221-ab91-2526a8d857ab",
        "BLOCK_SIZE": "4096",
        "TYPE": "btrfs",
        "USAGE": "filesystem",
    }


def test_blkid_export_of_a_partition_table_has_no_type() -> None:
    values = blockdev.parse_export(BLKID_MBR)
    assert values == {"DEVNAME": "/dev/loop0", "PTUUID": "5e1c4e12", "PTTYPE": "dos"}
    assert "TYPE" not in values


@pytest.mark.parametrize("output", ["", "\n"])
def test_blkid_export_of_an_empty_device(output: str) -> None:
    # blkid prints nothing (and exits 2) when it finds no signature
    assert blockdev.parse_export(output) == {}


def test_export_splits_at_the_first_equals_sign_only() -> None:
    # recorded from a filesystem made with `mkfs.btrfs -L 'my pool=1'`
    values = blockdev.parse_export("DEVNAME=f.img\nLABEL=my\\ pool=1\nTYPE=btrfs\n")
    assert set(values) == {"DEVNAME", "LABEL", "TYPE"}
    assert values["LABEL"].endswith(" pool=1")
    assert values["TYPE"] == "btrfs"
