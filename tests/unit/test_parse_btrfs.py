"""Parsers of the ``btrfs`` tool's output, fed with output recorded from btrfs-progs v6.2
(kernel 6.18) on loop devices: a two-disk RAID1 pool with quota, the same pool degraded,
a pool during a disk replacement, and a single-disk pool."""

from __future__ import annotations

import pytest

from speicher.system import btrfs

DUMP_SUPER = """\
superblock: bytenr=65536, device=/dev/loop0
---------------------------------------------------------
csum_type\t\t0 (crc32c)
csum_size\t\t4
csum\t\t\t0x0a31a6a4 [match]
bytenr\t\t\t65536
flags\t\t\t0x1
\t\t\t( WRITTEN )
magic\t\t\t_BHRfS_M [match]
fsid\t\t\t01a060c3-6165-4ba7-8ae9-15ac93493654
metadata_uuid\t\t01a060c3-6165-4ba7-8ae9-15ac93493654
label\t\t\tcappool
generation\t\t10
root\t\t\t30883840
sys_array_size\t\t129
chunk_root_generation\t6
root_level\t\t0
chunk_root\t\t22036480
chunk_root_level\t0
log_root\t\t0
log_root_transid (deprecated)\t0
log_root_level\t\t0
total_bytes\t\t2147483648
bytes_used\t\t5423104
sectorsize\t\t4096
nodesize\t\t16384
leafsize (deprecated)\t16384
stripesize\t\t4096
root_dir\t\t6
num_devices\t\t2
compat_flags\t\t0x0
compat_ro_flags\t\t0x3
\t\t\t( FREE_SPACE_TREE |
\t\t\t  FREE_SPACE_TREE_VALID )
incompat_flags\t\t0x361
\t\t\t( MIXED_BACKREF |
\t\t\t  BIG_METADATA |
\t\t\t  EXTENDED_IREF |
\t\t\t  SKINNY_METADATA |
\t\t\t  NO_HOLES )
cache_generation\t0
uuid_tree_generation\t10
dev_item.uuid\t\ta9490836-8b79-4221-ab91-2526a8d857ab
dev_item.fsid\t\t01a060c3-6165-4ba7-8ae9-15ac93493654 [match]
dev_item.type\t\t0
dev_item.total_bytes\t1073741824
dev_item.bytes_used\t223084544
dev_item.io_align\t4096
dev_item.io_width\t4096
dev_item.sector_size\t4096
dev_item.devid\t\t1
dev_item.dev_group\t0
dev_item.seek_speed\t0
dev_item.bandwidth\t0
dev_item.generation\t0

"""

# `dump-super` of a filesystem made without --label (only the first lines, the rest as above)
DUMP_SUPER_NO_LABEL = """\
superblock: bytenr=65536, device=f.img
fsid\t\t\tafde55ca-262b-4425-bc90-e20761c72326
metadata_uuid\t\tafde55ca-262b-4425-bc90-e20761c72326
label\t\t\t
generation\t\t6
total_bytes\t\t209715200
bytes_used\t\t147456
num_devices\t\t1
dev_item.uuid\t\t9acfebff-50b2-41ea-aa52-cbff127f60e5
dev_item.fsid\t\tafde55ca-262b-4425-bc90-e20761c72326 [match]
dev_item.total_bytes\t209715200
dev_item.bytes_used\t92274688
dev_item.devid\t\t1
"""

FS_SHOW = """\
Label: 'cappool'  uuid: 01a060c3-6165-4ba7-8ae9-15ac93493654
\tTotal devices 2 FS bytes used 5439488
\tdevid    1 size 1073741824 used 223084544 path /dev/loop0
\tdevid    2 size 1073741824 used 223084544 path /dev/loop1

"""

FS_SHOW_DEGRADED = """\
Label: 'cappool'  uuid: 01a060c3-6165-4ba7-8ae9-15ac93493654
\tTotal devices 2 FS bytes used 5423104
\tdevid    1 size 1073741824 used 256638976 path /dev/loop0
\tdevid    2 size 0 used 0 path <missing disk> MISSING

"""

# while `btrfs replace` copies devid 2 (/dev/loop1) to /dev/loop4, the target shows as devid 0
FS_SHOW_REPLACING = """\
Label: none  uuid: bcc6d09b-b481-424d-9777-259a34b154d9
\tTotal devices 3 FS bytes used 2099396608
\tdevid    0 size 3221225472 used 2561867776 path /dev/loop4
\tdevid    1 size 3221225472 used 2863857664 path /dev/loop0
\tdevid    2 size 3221225472 used 2863857664 path /dev/loop1

"""

USAGE = """\
Overall:
    Device size:\t\t        2147483648
    Device allocated:\t\t         446169088
    Device unallocated:\t\t        1701314560
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t          10846208
    Free (estimated):\t\t         952762368\t(min: 952762368)
    Free (statfs, df):\t\t         951713792
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 16384)
    Multiple profiles:\t\t                no

Data,RAID1: Size:107347968, Used:5242880 (4.88%)
   /dev/loop0\t 107347968
   /dev/loop1\t 107347968

Metadata,RAID1: Size:107347968, Used:163840 (0.15%)
   /dev/loop0\t 107347968
   /dev/loop1\t 107347968

System,RAID1: Size:8388608, Used:16384 (0.20%)
   /dev/loop0\t   8388608
   /dev/loop1\t   8388608

Unallocated:
   /dev/loop0\t 850657280
   /dev/loop1\t 850657280
"""

USAGE_DEGRADED = """\
Overall:
    Device size:\t\t        2147483648
    Device allocated:\t\t         513277952
    Device unallocated:\t\t        1634205696
    Device missing:\t\t        1073741824
    Device slack:\t\t                 0
    Used:\t\t\t          10846208
    Free (estimated):\t\t         919207936\t(min: 919207936)
    Free (statfs, df):\t\t         510132224
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,RAID1: Size:107347968, Used:5242880 (4.88%)
   /dev/loop0\t 107347968
   <missing disk>\t 107347968

Metadata,RAID1: Size:107347968, Used:163840 (0.15%)
   /dev/loop0\t 107347968
   <missing disk>\t 107347968

System,RAID1: Size:41943040, Used:16384 (0.04%)
   /dev/loop0\t  41943040
   <missing disk>\t  41943040

Unallocated:
   /dev/loop0\t 817102848
   <missing disk>\t 817102848
"""

USAGE_SINGLE = """\
Overall:
    Device size:\t\t        1073741824
    Device allocated:\t\t         132513792
    Device unallocated:\t\t         941228032
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t           3440640
    Free (estimated):\t\t         946470912\t(min: 475856896)
    Free (statfs, df):\t\t         945422336
    Data ratio:\t\t\t              1.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,single: Size:8388608, Used:3145728 (37.50%)
   /dev/loop0\t   8388608

Metadata,DUP: Size:53673984, Used:131072 (0.24%)
   /dev/loop0\t 107347968

System,DUP: Size:8388608, Used:16384 (0.20%)
   /dev/loop0\t  16777216

Unallocated:
   /dev/loop0\t 941228032
"""

DEVICE_STATS = """\
[/dev/loop0].write_io_errs    0
[/dev/loop0].read_io_errs     0
[/dev/loop0].flush_io_errs    0
[/dev/loop0].corruption_errs  0
[/dev/loop0].generation_errs  0
[/dev/loop1].write_io_errs    0
[/dev/loop1].read_io_errs     0
[/dev/loop1].flush_io_errs    0
[/dev/loop1].corruption_errs  0
[/dev/loop1].generation_errs  0
"""

DEVICE_STATS_DEGRADED = """\
[/dev/loop0].write_io_errs    0
[/dev/loop0].read_io_errs     0
[/dev/loop0].flush_io_errs    0
[/dev/loop0].corruption_errs  0
[/dev/loop0].generation_errs  0
[<missing disk>].write_io_errs    0
[<missing disk>].read_io_errs     0
[<missing disk>].flush_io_errs    0
[<missing disk>].corruption_errs  0
[<missing disk>].generation_errs  0
"""

# after a scrub repaired one block whose copy on /dev/loop2 had been overwritten
DEVICE_STATS_ERRORS = """\
[/dev/loop0].write_io_errs    0
[/dev/loop0].read_io_errs     0
[/dev/loop0].flush_io_errs    0
[/dev/loop0].corruption_errs  0
[/dev/loop0].generation_errs  0
[/dev/loop2].write_io_errs    0
[/dev/loop2].read_io_errs     0
[/dev/loop2].flush_io_errs    0
[/dev/loop2].corruption_errs  1
[/dev/loop2].generation_errs  0
"""

QGROUP_LIMITED = """\
Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path\x20
--------    ----------    ---------  --------------  -------------   ----\x20
0/256          5259264      5259264       104857600           none   share1
"""

QGROUP_UNLIMITED = """\
Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path\x20
--------    ----------    ---------  --------------  -------------   ----\x20
0/256          5259264      5259264            none           none   share1
"""

BALANCE_NONE = """\
No balance found on '/tmp/spc_cap/work/mnt'
"""

BALANCE_RUNNING = """\
Balance on '/tmp/spc_cap/work2/mnt' is running
0 out of about 5 chunks balanced (1 considered), 100% left
"""

BALANCE_RUNNING_VERBOSE = """\
Balance on '/tmp/spc_cap/work2/mnt' is running
0 out of about 5 chunks balanced (1 considered), 100% left
Dumping filters: flags 0x7, state 0x1, force is off
  DATA (flags 0x0): balancing
  METADATA (flags 0x0): balancing
  SYSTEM (flags 0x0): balancing
"""

BALANCE_PAUSED = """\
Balance on '/tmp/spc_cap/work2/mnt' is paused
1 out of about 5 chunks balanced (1 considered),  80% left
"""

REPLACE_NEVER = """\
Never started
"""

REPLACE_RUNNING = "22.9% done, 0 write errs, 0 uncorr. read errs\n"

REPLACE_JUST_STARTED = "0.0% done, 0 write errs, 0 uncorr. read errs\n"

REPLACE_FINISHED = (
    "Started on 29.Nov 14:28:46, finished on 29.Nov 14:28:46, 0 write errs, 0 uncorr. read errs\n"
)

# `btrfs replace cancel` while the copy ran
REPLACE_CANCELED = (
    "Started on 29.Nov 14:30:46, canceled on 29.Nov 14:30:47 at 0.0%, "
    "0 write errs, 0 uncorr. read errs\n"
)


# -- dump-super ------------------------------------------------------------------------------


def test_dump_super_reads_identity_of_the_device() -> None:
    sb = btrfs.parse_dump_super(DUMP_SUPER)
    assert sb == btrfs.Superblock(
        fsid="01a060c3-6165-4ba7-8ae9-15ac93493654",
        label="cappool",
        num_devices=2,
        devid=1,
        total_bytes=1073741824,
    )


def test_dump_super_takes_the_device_size_not_the_filesystem_size() -> None:
    # total_bytes (2 GiB, whole filesystem) and dev_item.total_bytes (1 GiB) both occur
    assert btrfs.parse_dump_super(DUMP_SUPER).total_bytes == 1024**3


def test_dump_super_of_an_unlabelled_filesystem_has_an_empty_label() -> None:
    sb = btrfs.parse_dump_super(DUMP_SUPER_NO_LABEL)
    assert sb.label == ""
    assert sb.fsid == "afde55ca-262b-4425-bc90-e20761c72326"
    assert sb.num_devices == 1
    assert sb.devid == 1
    assert sb.total_bytes == 209715200


def test_dump_super_keeps_spaces_inside_a_label() -> None:
    # recorded from `mkfs.btrfs -L 'my pool=1'`
    sb = btrfs.parse_dump_super("label\t\t\tmy pool=1\nnum_devices\t\t1\n")
    assert sb.label == "my pool=1"
    assert sb.num_devices == 1


def test_dump_super_of_nothing_gives_zeros() -> None:
    assert btrfs.parse_dump_super("") == btrfs.Superblock("", "", 0, 0, 0)


# -- filesystem show -------------------------------------------------------------------------


def test_filesystem_show_lists_every_device() -> None:
    assert btrfs.parse_filesystem_show(FS_SHOW) == [
        btrfs.FsDevice(1, 1073741824, 223084544, "/dev/loop0", missing=False),
        btrfs.FsDevice(2, 1073741824, 223084544, "/dev/loop1", missing=False),
    ]


def test_filesystem_show_marks_a_missing_device() -> None:
    devices = btrfs.parse_filesystem_show(FS_SHOW_DEGRADED)
    assert devices == [
        btrfs.FsDevice(1, 1073741824, 256638976, "/dev/loop0", missing=False),
        btrfs.FsDevice(2, 0, 0, "", missing=True),
    ]


def test_filesystem_show_during_replace_includes_the_target_as_devid_0() -> None:
    devices = btrfs.parse_filesystem_show(FS_SHOW_REPLACING)
    assert [(d.devid, d.path) for d in devices] == [
        (0, "/dev/loop4"),
        (1, "/dev/loop0"),
        (2, "/dev/loop1"),
    ]
    assert all(d.size == 3221225472 for d in devices)
    assert not any(d.missing for d in devices)


def test_filesystem_show_ignores_header_lines() -> None:
    header = "Label: 'cappool'  uuid: 01a060c3-6165-4ba7-8ae9-15ac93493654\n"
    assert btrfs.parse_filesystem_show(header) == []


# -- filesystem usage ------------------------------------------------------------------------


def test_usage_of_a_healthy_raid1() -> None:
    assert btrfs.parse_usage(USAGE) == btrfs.Usage(
        device_size=2147483648,
        device_missing=0,
        used=10846208,
        free=952762368,
        data_ratio=2.0,
        data_profile="raid1",
        metadata_profile="raid1",
        free_statfs=951713792,
        unallocated=1701314560,
        devices=2,
        unallocated_per_device=(850657280, 850657280),
        data_size=107347968,
        data_used=5242880,
        metadata_ratio=2.0,
        metadata_size=107347968,
        metadata_used=163840,
        global_reserve=5767168,
    )


def test_usage_of_a_degraded_raid1_counts_the_missing_device() -> None:
    usage = btrfs.parse_usage(USAGE_DEGRADED)
    assert usage.device_missing == 1073741824
    assert usage.device_size == 2147483648
    assert usage.used == 10846208
    assert usage.free == 919207936
    assert (usage.data_profile, usage.metadata_profile) == ("raid1", "raid1")


def test_usage_of_a_single_disk_with_dup_metadata() -> None:
    assert btrfs.parse_usage(USAGE_SINGLE) == btrfs.Usage(
        device_size=1073741824,
        device_missing=0,
        used=3440640,
        free=946470912,
        data_ratio=1.0,
        data_profile="single",
        metadata_profile="dup",
        free_statfs=945422336,
        unallocated=941228032,
        devices=1,
        unallocated_per_device=(941228032,),
        data_size=8388608,
        data_used=3145728,
        metadata_ratio=2.0,
        metadata_size=53673984,
        metadata_used=131072,
        global_reserve=5767168,
    )


def test_usage_used_is_the_overall_figure_not_a_profile_line() -> None:
    # "Data,RAID1: Size:..., Used:5242880" must not be taken for the overall "Used:"
    assert btrfs.parse_usage(USAGE).used != 5242880


def test_usage_of_nothing_gives_zeros() -> None:
    assert btrfs.parse_usage("") == btrfs.Usage(0, 0, 0, 0, 0.0, "", "")


# -- device stats ----------------------------------------------------------------------------

COUNTERS = {
    "write_io_errs",
    "read_io_errs",
    "flush_io_errs",
    "corruption_errs",
    "generation_errs",
}


def test_device_stats_of_a_healthy_pool() -> None:
    stats = btrfs.parse_device_stats(DEVICE_STATS)
    assert set(stats) == {"/dev/loop0", "/dev/loop1"}
    for counters in stats.values():
        assert set(counters) == COUNTERS
        assert set(counters.values()) == {0}


def test_device_stats_count_a_repaired_corruption() -> None:
    stats = btrfs.parse_device_stats(DEVICE_STATS_ERRORS)
    assert stats["/dev/loop2"]["corruption_errs"] == 1
    assert sum(stats["/dev/loop2"].values()) == 1
    assert sum(stats["/dev/loop0"].values()) == 0


def test_device_stats_of_a_degraded_pool_name_the_missing_disk() -> None:
    stats = btrfs.parse_device_stats(DEVICE_STATS_DEGRADED)
    assert set(stats) == {"/dev/loop0", "<missing disk>"}
    assert set(stats["<missing disk>"]) == COUNTERS


# -- qgroup show -----------------------------------------------------------------------------


def test_qgroup_with_a_limit() -> None:
    assert btrfs.parse_qgroup_show(QGROUP_LIMITED) == btrfs.Qgroup(
        referenced=5259264, exclusive=5259264, max_referenced=104857600
    )


def test_qgroup_without_a_limit() -> None:
    assert btrfs.parse_qgroup_show(QGROUP_UNLIMITED) == btrfs.Qgroup(
        referenced=5259264, exclusive=5259264, max_referenced=None
    )


@pytest.mark.parametrize("output", ["", QGROUP_LIMITED.partition("0/256")[0]])
def test_qgroup_without_a_row_is_an_error(output: str) -> None:
    with pytest.raises(ValueError, match="no qgroup row"):
        btrfs.parse_qgroup_show(output)


# -- replace status --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (REPLACE_NEVER, ("never", 0.0)),
        (REPLACE_JUST_STARTED, ("running", 0.0)),
        (REPLACE_RUNNING, ("running", 22.9)),
        (REPLACE_FINISHED, ("finished", 100.0)),
    ],
    ids=["never", "just-started", "running", "finished"],
)
def test_replace_status(output: str, expected: tuple[str, float]) -> None:
    assert btrfs.parse_replace_status(output) == expected


def test_replace_status_of_a_canceled_replace_is_not_complete() -> None:
    # A canceled replace stopped at 0.0%: it must not read as 100% done, or the caller
    # (PoolService._poll_replace) takes the rebuild for finished.
    assert btrfs.parse_replace_status(REPLACE_CANCELED) == ("canceled", 0.0)


def test_replace_status_of_unknown_text_is_not_complete() -> None:
    assert btrfs.parse_replace_status("something new") == ("unknown", 0.0)


# -- balance status --------------------------------------------------------------------------


def test_balance_status_when_none_runs() -> None:
    assert btrfs.parse_balance_status(BALANCE_NONE) is None


@pytest.mark.parametrize("output", [BALANCE_RUNNING, BALANCE_RUNNING_VERBOSE])
def test_balance_status_at_the_start(output: str) -> None:
    assert btrfs.parse_balance_status(output) == 0.0


def test_balance_status_of_a_paused_balance_reports_its_progress() -> None:
    # "1 out of about 5 chunks balanced"
    assert btrfs.parse_balance_status(BALANCE_PAUSED) == pytest.approx(20.0)


def test_balance_status_with_zero_chunks_is_zero_not_a_division_error() -> None:
    # the recorded format, with the counts a balance that found no chunk would show
    output = (
        "Balance on '/mnt' is running\n0 out of about 0 chunks balanced (0 considered), 0% left\n"
    )
    assert btrfs.parse_balance_status(output) == 0.0


def test_a_degraded_pool_keeps_its_size() -> None:
    # the missing disk's space counts as it will again once it is back or replaced, so a
    # degraded pool does not also raise a capacity alert
    healthy = btrfs.capacity(btrfs.parse_usage(USAGE))
    degraded = btrfs.capacity(btrfs.parse_usage(USAGE_DEGRADED))
    assert abs(healthy[0] - degraded[0]) < 0.05 * healthy[0]
    assert degraded[1] == healthy[1] == 10846208 // 2
