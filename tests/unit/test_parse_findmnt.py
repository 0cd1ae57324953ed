"""``findmnt --json --list --output TARGET,SOURCE,FSTYPE,OPTIONS``, recorded with
util-linux 2.38; trimmed to a few of the 21 entries of the machine's table."""

from __future__ import annotations

from speicher.system import mount

FINDMNT = """\
{
   "filesystems": [
      {
         "target": "/proc",
         "source": "proc",
         "fstype": "proc",
         "options": "rw,relatime"
      },{
         "target": "/",
         "source": "/dev/vda",
         "fstype": "ext4",
         "options": "rw,relatime,discard,resv_strict,resuid=65534,resgid=65534"
      },{
         "target": "/sys/fs/cgroup/unified",
         "source": "cgroup2",
         "fstype": "cgroup2",
         "options": "rw,relatime"
      },{
         "target": "/tmp/spc_cap/work2/mnt",
         "source": "/dev/loop0",
         "fstype": "btrfs",
         "options": "rw,relatime,discard=async,space_cache=v2,subvolid=5,subvol=/"
      },{
         "target": "/tmp/spc_cap/work2/sub",
         "source": "/dev/loop0[/share1]",
         "fstype": "btrfs",
         "options": "rw,relatime,discard=async,space_cache=v2,subvolid=256,subvol=/share1"
      }
   ]
}
"""

# the pool after `mount -o degraded` with one disk gone
FINDMNT_DEGRADED = """\
{
   "filesystems": [
      {
         "target": "/tmp/spc_cap/work/mnt",
         "source": "/dev/loop0",
         "fstype": "btrfs",
         "options": "rw,relatime,degraded,discard=async,space_cache=v2,subvolid=5,subvol=/"
      }
   ]
}
"""


def test_every_mount_in_table_order() -> None:
    mounts = mount.parse_findmnt(FINDMNT)
    assert [m.target for m in mounts] == [
        "/proc",
        "/",
        "/sys/fs/cgroup/unified",
        "/tmp/spc_cap/work2/mnt",
        "/tmp/spc_cap/work2/sub",
    ]
    assert mounts[1] == mount.Mount(
        target="/",
        source="/dev/vda",
        fstype="ext4",
        options="rw,relatime,discard,resv_strict,resuid=65534,resgid=65534",
    )


def test_a_subvolume_mount_names_the_subvolume_in_its_source() -> None:
    sub = mount.parse_findmnt(FINDMNT)[4]
    assert sub.source == "/dev/loop0[/share1]"
    assert sub.fstype == "btrfs"
    assert "subvol=/share1" in sub.options.split(",")


def test_a_degraded_mount_shows_the_option() -> None:
    (pool,) = mount.parse_findmnt(FINDMNT_DEGRADED)
    assert pool.source == "/dev/loop0"
    assert "degraded" in pool.options.split(",")


def test_no_output_means_no_mounts() -> None:
    # list_mounts runs findmnt with check=False: a failing findmnt leaves stdout empty
    assert mount.parse_findmnt("") == []
