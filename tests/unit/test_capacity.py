"""What a pool holds, in bytes users can store, from ``btrfs filesystem usage -b`` recorded
(btrfs-progs v6.2, kernel 6.18, loop devices) on pools that were empty and then filled until
every write failed with ENOSPC: a one-disk pool (data single, metadata dup) with big files
and with ~158,000 tiny files that fill the metadata first, a two-disk raid1 pool, a raid1
pool over disks of 512M, 1G and 2G, and a raid1 pool that got a third disk. ``statvfs`` said
89.1 % (single) and 89.8 % (raid1) used for the full pools; a pool that takes no more data
must say at least 99 %."""

from __future__ import annotations

import dataclasses

import pytest

from speicher.system import btrfs

SINGLE_EMPTY = """\
Overall:
    Device size:\t\t        1073741824
    Device allocated:\t\t         132513792
    Device unallocated:\t\t         941228032
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t            360448
    Free (estimated):\t\t         949616640\t(min: 479002624)
    Free (statfs, df):\t\t         948568064
    Data ratio:\t\t\t              1.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,single: Size:8388608, Used:0 (0.00%)
   /dev/loop2\t   8388608

Metadata,DUP: Size:53673984, Used:163840 (0.31%)
   /dev/loop2\t 107347968

System,DUP: Size:8388608, Used:16384 (0.20%)
   /dev/loop2\t  16777216

Unallocated:
   /dev/loop2\t 941228032
"""

SINGLE_FULL = """\
Overall:
    Device size:\t\t        1073741824
    Device allocated:\t\t        1072693248
    Device unallocated:\t\t           1048576
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t         951091200
    Free (estimated):\t\t                 0\t(min: 0)
    Free (statfs, df):\t\t                 0
    Data ratio:\t\t\t              1.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,single: Size:948568064, Used:948568064 (100.00%)
   /dev/loop2\t 948568064

Metadata,DUP: Size:53673984, Used:1245184 (2.32%)
   /dev/loop2\t 107347968

System,DUP: Size:8388608, Used:16384 (0.20%)
   /dev/loop2\t  16777216

Unallocated:
   /dev/loop2\t   1048576
"""

RAID1_EMPTY = """\
Overall:
    Device size:\t\t        2147483648
    Device allocated:\t\t         446169088
    Device unallocated:\t\t        1701314560
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t            360448
    Free (estimated):\t\t         958005248\t(min: 958005248)
    Free (statfs, df):\t\t         956956672
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,RAID1: Size:107347968, Used:0 (0.00%)
   /dev/loop2\t 107347968
   /dev/loop3\t 107347968

Metadata,RAID1: Size:107347968, Used:163840 (0.15%)
   /dev/loop2\t 107347968
   /dev/loop3\t 107347968

System,RAID1: Size:8388608, Used:16384 (0.20%)
   /dev/loop2\t   8388608
   /dev/loop3\t   8388608

Unallocated:
   /dev/loop2\t 850657280
   /dev/loop3\t 850657280
"""

RAID1_FULL = """\
Overall:
    Device size:\t\t        2147483648
    Device allocated:\t\t        2145386496
    Device unallocated:\t\t           2097152
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t        1916305408
    Free (estimated):\t\t                 0\t(min: 0)
    Free (statfs, df):\t\t                 0
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,RAID1: Size:956956672, Used:956956672 (100.00%)
   /dev/loop2\t 956956672
   /dev/loop3\t 956956672

Metadata,RAID1: Size:107347968, Used:1179648 (1.10%)
   /dev/loop2\t 107347968
   /dev/loop3\t 107347968

System,RAID1: Size:8388608, Used:16384 (0.20%)
   /dev/loop2\t   8388608
   /dev/loop3\t   8388608

Unallocated:
   /dev/loop2\t   1048576
   /dev/loop3\t   1048576
"""

RAID1_UNEQUAL_EMPTY = """\
Overall:
    Device size:\t\t        3758096384
    Device allocated:\t\t         929431552
    Device unallocated:\t\t        2828664832
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t            360448
    Free (estimated):\t\t        1602224128\t(min: 1602224128)
    Free (statfs, df):\t\t         795869184
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,RAID1: Size:187891712, Used:0 (0.00%)
   /dev/loop3\t 187891712
   /dev/loop4\t 187891712

Metadata,RAID1: Size:268435456, Used:163840 (0.06%)
   /dev/loop3\t 268435456
   /dev/loop4\t 268435456

System,RAID1: Size:8388608, Used:16384 (0.20%)
   /dev/loop3\t   8388608
   /dev/loop4\t   8388608

Unallocated:
   /dev/loop2\t 536870912
   /dev/loop3\t 609026048
   /dev/loop4\t1682767872
"""

RAID1_UNEQUAL_FULL = """\
Overall:
    Device size:\t\t        3758096384
    Device allocated:\t\t        3217031168
    Device unallocated:\t\t         541065216
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t        2666397696
    Free (estimated):\t\t         270598144\t(min: 270598144)
    Free (statfs, df):\t\t             65536
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,RAID1: Size:1331691520, Used:1331625984 (100.00%)
   /dev/loop2\t 535822336
   /dev/loop3\t 795869184
   /dev/loop4\t1331691520

Metadata,RAID1: Size:268435456, Used:1556480 (0.58%)
   /dev/loop3\t 268435456
   /dev/loop4\t 268435456

System,RAID1: Size:8388608, Used:16384 (0.20%)
   /dev/loop3\t   8388608
   /dev/loop4\t   8388608

Unallocated:
   /dev/loop2\t   1048576
   /dev/loop3\t   1048576
   /dev/loop4\t 538968064
"""

TINY_FILES_FULL = """\
Overall:
    Device size:\t\t         536870912
    Device allocated:\t\t         535822336
    Device unallocated:\t\t           1048576
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t         491192320
    Free (estimated):\t\t           8388608\t(min: 8388608)
    Free (statfs, df):\t\t           8388608
    Data ratio:\t\t\t              1.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,single: Size:8388608, Used:0 (0.00%)
   /dev/loop1\t   8388608

Metadata,DUP: Size:255328256, Used:245579776 (96.18%)
   /dev/loop1\t 510656512

System,DUP: Size:8388608, Used:16384 (0.20%)
   /dev/loop1\t  16777216

Unallocated:
   /dev/loop1\t   1048576
"""

# two 2G disks in raid1 with 20M of files, then a third 2G disk added
RAID1_ADDED = """\
Overall:
    Device size:\t\t        6442450944
    Device allocated:\t\t         983040000
    Device unallocated:\t\t        5459410944
    Device missing:\t\t                 0
    Device slack:\t\t                 0
    Used:\t\t\t          42303488
    Free (estimated):\t\t        2923429888\t(min: 2923429888)
    Free (statfs, df):\t\t        1848639488
    Data ratio:\t\t\t              2.00
    Metadata ratio:\t\t              2.00
    Global reserve:\t\t           5767168\t(used: 0)
    Multiple profiles:\t\t                no

Data,RAID1: Size:214695936, Used:20971520 (9.77%)
   /dev/loop12\t 214695936
   /dev/loop13\t 214695936

Metadata,RAID1: Size:268435456, Used:163840 (0.06%)
   /dev/loop12\t 268435456
   /dev/loop13\t 268435456

System,RAID1: Size:8388608, Used:16384 (0.20%)
   /dev/loop12\t   8388608
   /dev/loop13\t   8388608

Unallocated:
   /dev/loop12\t1655963648
   /dev/loop13\t1655963648
   /dev/loop14\t2147483648
"""


def percent_used(output: str) -> float:
    size, used, free = btrfs.capacity(btrfs.parse_usage(output))
    assert size == used + free and min(size, used, free) >= 0
    return 100 * used / size


@pytest.mark.parametrize(
    "full", [SINGLE_FULL, RAID1_FULL, RAID1_UNEQUAL_FULL, TINY_FILES_FULL], ids=str.__len__
)
def test_a_pool_that_takes_no_more_data_is_full(full: str) -> None:
    assert percent_used(full) >= 99


@pytest.mark.parametrize("empty", [SINGLE_EMPTY, RAID1_EMPTY, RAID1_UNEQUAL_EMPTY])
def test_an_empty_pool_is_empty(empty: str) -> None:
    assert percent_used(empty) < 0.1


def test_size_is_what_files_can_take_after_the_copies() -> None:
    # raid1 over two 1G disks: about 0.9G for files, not the 2G of raw disk
    size, used, free = btrfs.capacity(btrfs.parse_usage(RAID1_EMPTY))
    assert (used, free) == (360448 // 2, 956956672)
    full_size, full_used, _ = btrfs.capacity(btrfs.parse_usage(RAID1_FULL))
    assert full_used == 1916305408 // 2  # data and metadata, counted once
    assert abs(full_size - size) < 0.01 * size  # the size holds while the pool fills
    single = btrfs.capacity(btrfs.parse_usage(SINGLE_EMPTY))
    assert 0.85 * 1024**3 < single[0] < 1024**3


def test_free_counts_only_space_the_copies_can_pair() -> None:
    # disks of unequal size: "Free (estimated)" still sees 270M the full pool cannot use
    full = btrfs.parse_usage(RAID1_UNEQUAL_FULL)
    assert full.free == 270598144
    assert full.unallocated_per_device == (1048576, 1048576, 538968064)
    assert btrfs.free_for_data(full) == full.data_size - full.data_used == 65536
    # empty, the same pool: the size is what it took when filled (1.33G), not statfs's 0.8G
    empty = btrfs.capacity(btrfs.parse_usage(RAID1_UNEQUAL_EMPTY))[0]
    full_size = btrfs.capacity(full)[0]
    assert abs(empty - full_size) < 0.01 * full_size
    # a third disk added: statfs says 1.8G free, the disks hold 2.9G of files
    added = btrfs.parse_usage(RAID1_ADDED)
    assert added.free_statfs == 1848639488
    assert 2.9 * 1000**3 < btrfs.free_for_data(added) <= added.free == 2923429888
    # a profile this does not know: btrfs's estimate
    odd = dataclasses.replace(added, data_profile="raid5")
    assert btrfs.free_for_data(odd) == added.free


def test_pairing_copies_over_disks() -> None:
    assert btrfs.pairable([10, 10], 2) == 10
    assert btrfs.pairable([100, 10, 10], 2) == 20  # the big disk has no partner for the rest
    assert btrfs.pairable([5, 5, 5], 2) == 7  # 15 // 2
    assert btrfs.pairable([30, 10, 10, 10], 3) == 15  # (30 - 15) cannot go anywhere
    assert btrfs.pairable([10, 10], 3) == 0  # raid1c3 needs three disks
    assert btrfs.pairable([7, -1, 3], 1) == 10
    dup = dataclasses.replace(btrfs.parse_usage(SINGLE_EMPTY), data_profile="dup")
    assert btrfs.free_for_data(dup) == (941228032 - 1048576) // 2 + 8388608


def test_exhausted_metadata_leaves_no_room_for_files() -> None:
    # tiny files: metadata is full, an empty 8M data chunk is all that looks free
    usage = btrfs.parse_usage(TINY_FILES_FULL)
    assert (usage.free, usage.free_statfs) == (8388608, 8388608)
    assert (usage.metadata_size, usage.metadata_used) == (255328256, 245579776)
    assert (usage.unallocated, usage.devices, usage.global_reserve) == (1048576, 1, 5767168)
    assert btrfs.metadata_exhausted(usage)
    assert btrfs.capacity(usage)[2] == 0
    # metadata as full, but disk left for a new metadata chunk: not exhausted
    roomy = dataclasses.replace(usage, unallocated=64 * 1024**2)
    assert not btrfs.metadata_exhausted(roomy)
    assert btrfs.capacity(roomy)[2] == 8388608
    # mixed block groups (no metadata chunks of their own): no such rule
    assert not btrfs.metadata_exhausted(dataclasses.replace(usage, metadata_size=0))
    # a pool with data filling it but room in metadata is judged by the estimates
    for sample in (SINGLE_FULL, RAID1_FULL, RAID1_UNEQUAL_FULL, SINGLE_EMPTY, RAID1_EMPTY):
        assert not btrfs.metadata_exhausted(btrfs.parse_usage(sample))


def test_the_new_usage_fields_of_a_raid1_pool() -> None:
    usage = btrfs.parse_usage(RAID1_UNEQUAL_EMPTY)
    assert usage.devices == 3
    assert usage.metadata_ratio == 2.0
    assert usage.free_statfs == 795869184


def test_nothing_parsed_gives_nothing() -> None:
    assert btrfs.capacity(btrfs.parse_usage("")) == (0, 0, 0)
