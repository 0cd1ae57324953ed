"""Parsers of scrub output and of what scrubs write to the kernel log, fed with output recorded
from btrfs-progs v6.2 on kernel 6.18 (loop devices): a two-disk RAID1 pool where one copy of
a block was overwritten (corrected), where both copies were (uncorrectable), the same pool
with a disk missing, and a one-disk pool with a damaged file in a subvolume."""

from __future__ import annotations

from speicher.protection.scrub import MISSING
from speicher.system import btrfs

# `btrfs scrub start -B -d -R` (stdout), one copy of a block on /dev/loop2 overwritten
START_CORRECTED = """\

Scrub device /dev/loop1 (id 1) done
Scrub started:    Sun Nov 29 15:43:20 2026
Status:           finished
Duration:         0:00:01
\tdata_extents_scrubbed: 4800
\ttree_extents_scrubbed: 29
\tdata_bytes_scrubbed: 314572800
\ttree_bytes_scrubbed: 475136
\tread_errors: 0
\tcsum_errors: 0
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 0
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 643563520

Scrub device /dev/loop2 (id 2) done
Scrub started:    Sun Nov 29 15:43:20 2026
Status:           finished
Duration:         0:00:01
\tdata_extents_scrubbed: 4800
\ttree_extents_scrubbed: 29
\tdata_bytes_scrubbed: 314572800
\ttree_bytes_scrubbed: 475136
\tread_errors: 0
\tcsum_errors: 1
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 0
\tunverified_errors: 0
\tcorrected_errors: 1
\tlast_physical: 622592000
"""

# the same, both copies of a 64 KiB file's second and third block overwritten (and a 600 MB
# file written since); btrfs exits 3
START_UNCORRECTABLE = """\

Scrub device /dev/loop1 (id 1) done
Scrub started:    Sun Nov 29 15:41:16 2026
Status:           finished
Duration:         0:00:02
\tdata_extents_scrubbed: 9617
\ttree_extents_scrubbed: 51
\tdata_bytes_scrubbed: 630259712
\ttree_bytes_scrubbed: 835584
\tread_errors: 0
\tcsum_errors: 2
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 2
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 1073741824

Scrub device /dev/loop2 (id 2) done
Scrub started:    Sun Nov 29 15:41:16 2026
Status:           finished
Duration:         0:00:02
\tdata_extents_scrubbed: 9617
\ttree_extents_scrubbed: 51
\tdata_bytes_scrubbed: 630259712
\ttree_bytes_scrubbed: 835584
\tread_errors: 0
\tcsum_errors: 2
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 2
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 1073741824
"""

# the pool mounted degraded, /dev/loop2 gone; btrfs exits 0 and warns "device 2 not present"
START_DEGRADED = """\

Scrub device /dev/loop1 (id 1) done
Scrub started:    Sun Nov 29 15:43:47 2026
Status:           finished
Duration:         0:00:01
\tdata_extents_scrubbed: 4800
\ttree_extents_scrubbed: 29
\tdata_bytes_scrubbed: 314572800
\ttree_bytes_scrubbed: 475136
\tread_errors: 0
\tcsum_errors: 0
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 0
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 681377792

Scrub device <missing disk> (id 2) canceled
Scrub started:    Sun Nov 29 15:43:47 2026
Status:           aborted
Duration:         0:00:00
\tdata_extents_scrubbed: 0
\ttree_extents_scrubbed: 0
\tdata_bytes_scrubbed: 0
\ttree_bytes_scrubbed: 0
\tread_errors: 0
\tcsum_errors: 0
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 0
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 0
"""

# `btrfs scrub status -R` while a scrub of 600 MB (two copies) runs, and before any scrub
STATUS_RUNNING = """\
UUID:             a9074f5b-2ea4-4d83-887a-ea0972e60eed
Scrub started:    Sun Nov 29 15:43:00 2026
Status:           running
Duration:         0:00:01
\tdata_extents_scrubbed: 3832
\ttree_extents_scrubbed: 58
\tdata_bytes_scrubbed: 251133952
\ttree_bytes_scrubbed: 950272
\tread_errors: 0
\tcsum_errors: 0
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 0
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 349962240
"""

STATUS_NEVER = """\
UUID:             a9074f5b-2ea4-4d83-887a-ea0972e60eed
\tno stats available
\tdata_extents_scrubbed: 0
\ttree_extents_scrubbed: 0
\tdata_bytes_scrubbed: 0
\ttree_bytes_scrubbed: 0
\tread_errors: 0
\tcsum_errors: 0
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 0
\tmalloc_errors: 0
\tuncorrectable_errors: 0
\tunverified_errors: 0
\tcorrected_errors: 0
\tlast_physical: 0
"""

# /dev/kmsg records during the corrected scrub (another test's pool mounting on loop3/loop4)
KMSG_CORRECTED = [
    "6,2809,5089327306,-;BTRFS: device label speicher-tank devid 1 transid 6 /dev/loop3 (7:3) "
    "scanned by mount (31364)\n",
    "6,2810,5089327568,-;BTRFS info (device loop3): first mount of filesystem "
    "8fa0f5d0-08c3-43ea-be7a-8cd351999b9d\n",
    "6,2815,5089374029,-;BTRFS info (device loop1): scrub: started on devid 2\n",
    "6,2816,5089376117,-;BTRFS info (device loop1): scrub: started on devid 1\n",
    "6,2817,5089398380,-;BTRFS info (device loop3): qgroup scan completed (inconsistency flag "
    "cleared)\n",
    "3,2818,5089408983,-;BTRFS error (device loop1): scrub: fixed up error at logical 245104640 "
    "on dev /dev/loop2 physical 224133120\n",
    "3,2819,5089411234,-;BTRFS error (device loop1): bdev /dev/loop2 errs: wr 0, rd 0, flush 0, "
    "corrupt 2, gen 0\n",
    "6,2828,5090583227,-;BTRFS info (device loop1): scrub: finished on devid 1 with status: 0\n",
    "6,2829,5090598568,-;BTRFS info (device loop1): scrub: finished on devid 2 with status: 0\n",
]

# ... during the uncorrectable scrub (the file is "sub/dir/bad file.bin" in the top subvolume)
KMSG_UNCORRECTABLE = [
    "3,2745,4965711370,-;BTRFS error (device loop1): scrub: unable to fixup (regular) error at "
    "logical 278659072 on dev /dev/loop2 physical 257687552\n",
    "4,2746,4965713229,-;BTRFS warning (device loop1): scrub: checksum error at logical "
    "278659072 on dev /dev/loop2, physical 257687552 root 5 inode 260 offset 0 length 4096 "
    "links 1 (path: sub/dir/bad file.bin)\n",
    "3,2749,4965715036,-;BTRFS error (device loop1): bdev /dev/loop2 errs: wr 0, rd 0, flush 0, "
    "corrupt 4, gen 0\n",
    "3,2750,4965715578,-;BTRFS error (device loop1): scrub: unable to fixup (regular) error at "
    "logical 278659072 on dev /dev/loop1 physical 278659072\n",
    "4,2752,4965719444,-;BTRFS warning (device loop1): scrub: checksum error at logical "
    "278659072 on dev /dev/loop1, physical 278659072 root 5 inode 260 offset 0 length 4096 "
    "links 1 (path: sub/dir/bad file.bin)\n",
]

# ... a one-disk pool, a file with a UTF-8 name in subvolume 256 (the kernel escapes bytes)
KMSG_SINGLE = [
    "3,2944,5259620322,-;BTRFS error (device loop1): scrub: unable to fixup (regular) error at "
    "logical 13631488 on dev /dev/loop1 physical 13631488\n",
    "4,2945,5259623182,-;BTRFS warning (device loop1): scrub: checksum error at logical "
    "13631488 on dev /dev/loop1, physical 13631488 root 256 inode 257 offset 0 length 4096 "
    "links 1 (path: Bericht f\\xc3\\xbcr M\\xc3\\xa4rz.txt)\n",
]

# `btrfs inspect-internal logical-resolve -P 13631488 MNT` after a snapshot (root 257) of the
# subvolume was taken: both name the block
LOGICAL_RESOLVE = """\
inode 257 offset 0 root 257
inode 257 offset 0 root 256
"""


def test_scrub_start_gives_each_devices_counters() -> None:
    devices = btrfs.parse_scrub_start(START_CORRECTED)
    assert [(d.device, d.devid, d.stats.status) for d in devices] == [
        ("/dev/loop1", 1, "finished"),
        ("/dev/loop2", 2, "finished"),
    ]
    clean, fixed = devices[0].stats, devices[1].stats
    assert (clean.errors_found, clean.corrected) == (0, 0)
    assert (fixed.csum_errors, fixed.corrected, fixed.uncorrectable) == (1, 1, 0)
    assert fixed.bytes_scrubbed == 314572800 + 475136


def test_the_total_adds_up_the_devices() -> None:
    total = btrfs.scrub_total(btrfs.parse_scrub_start(START_CORRECTED))
    assert total.status == "finished"
    assert total.bytes_scrubbed == 2 * (314572800 + 475136)
    assert (total.errors_found, total.corrected, total.uncorrectable) == (1, 1, 0)


def test_uncorrectable_errors_are_counted_on_both_copies() -> None:
    total = btrfs.scrub_total(btrfs.parse_scrub_start(START_UNCORRECTABLE))
    assert (total.csum_errors, total.corrected, total.uncorrectable) == (4, 0, 4)
    assert total.errors_found == 4


def test_a_missing_device_is_reported_as_canceled_and_aborted() -> None:
    devices = btrfs.parse_scrub_start(START_DEGRADED)
    assert [(d.device, d.devid, d.stats.status) for d in devices] == [
        ("/dev/loop1", 1, "finished"),
        (MISSING, 2, "aborted"),
    ]
    present = [d for d in devices if d.device != MISSING]
    assert btrfs.scrub_total(present).status == "finished"
    assert btrfs.scrub_total(devices).status == "aborted"


def test_a_missing_disk_without_a_name_is_missing() -> None:
    # btrfs-progs 6.2 once the kernel forgot the disk's path: no name between the spaces
    forgotten = START_DEGRADED.replace("<missing disk> (id 2)", " (id 2)")
    assert "Scrub device  (id 2) canceled" in forgotten
    devices = btrfs.parse_scrub_start(forgotten)
    assert [(d.device, d.devid) for d in devices] == [("/dev/loop1", 1), (MISSING, 2)]
    # device 1's counters stay its own (they were overwritten by device 2's zeros)
    assert devices[0].stats.data_bytes == 314572800
    assert btrfs.scrub_total(devices[:1]).bytes_scrubbed == 314572800 + 475136


def test_status_while_running_and_before_any_scrub() -> None:
    running = btrfs.parse_scrub_status(STATUS_RUNNING)
    assert running.status == "running"
    assert running.bytes_scrubbed == 251133952 + 950272
    never = btrfs.parse_scrub_status(STATUS_NEVER)
    assert never.status == "never"
    assert never.bytes_scrubbed == 0


def test_kmsg_records_give_their_message() -> None:
    message = btrfs.parse_kmsg_record(KMSG_CORRECTED[5])
    assert message.startswith("BTRFS error (device loop1): scrub: fixed up error at logical")
    assert not message.endswith("\n")
    # a continuation line (dictionary of the record) is not part of the message
    assert btrfs.parse_kmsg_record("6,1,2,-;hello\n SUBSYSTEM=block\n") == "hello"


def test_kmsg_escapes_of_utf8_names_are_undone() -> None:
    message = btrfs.parse_kmsg_record(KMSG_SINGLE[1])
    assert message.endswith("(path: Bericht für März.txt)")


def test_corrected_errors_of_our_devices_only() -> None:
    messages = [btrfs.parse_kmsg_record(r) for r in KMSG_CORRECTED]
    errors, described = btrfs.parse_scrub_errors(messages, {"/dev/loop1", "/dev/loop2"})
    assert errors == [btrfs.ScrubError(245104640, "/dev/loop2", corrected=True)]
    assert described == []
    # another pool's devices: nothing of ours
    assert btrfs.parse_scrub_errors(messages, {"/dev/loop3"}) == ([], [])


def test_uncorrectable_errors_and_the_kernels_own_path() -> None:
    messages = [btrfs.parse_kmsg_record(r) for r in KMSG_UNCORRECTABLE]
    errors, described = btrfs.parse_scrub_errors(messages, {"/dev/loop1", "/dev/loop2"})
    assert errors == [
        btrfs.ScrubError(278659072, "/dev/loop2", corrected=False),
        btrfs.ScrubError(278659072, "/dev/loop1", corrected=False),
    ]
    assert {(d.logical, d.root, d.inode, d.path) for d in described} == {
        (278659072, 5, 260, "sub/dir/bad file.bin")
    }
    only_one = btrfs.parse_scrub_errors(messages, {"/dev/loop1"})[0]
    assert [e.device for e in only_one] == ["/dev/loop1"]


def test_a_damaged_file_in_a_subvolume() -> None:
    messages = [btrfs.parse_kmsg_record(r) for r in KMSG_SINGLE]
    errors, described = btrfs.parse_scrub_errors(messages, {"/dev/loop1"})
    assert errors == [btrfs.ScrubError(13631488, "/dev/loop1", corrected=False)]
    assert described[0].root == 256
    assert described[0].path == "Bericht für März.txt"


def test_logical_resolve_names_inodes_of_each_subvolume() -> None:
    assert btrfs.parse_logical_resolve(LOGICAL_RESOLVE) == [
        btrfs.InodeRef(inode=257, offset=0, root=257),
        btrfs.InodeRef(inode=257, offset=0, root=256),
    ]
    assert btrfs.parse_logical_resolve("") == []


# kernel 6.18, one-disk pool of six 300 KiB files from logical 13631488; blocks of the third
# (inode 259, file offset 163840) and fourth file (inode 260, offset 40960) overwritten. Both
# lines give the start of the 64 KiB stripe, and the second names the third file again
KMSG_STRIPE_STARTS = [
    "3,677,670499834,-;BTRFS error (device loop0): scrub: unable to fixup (regular) error at "
    "logical 14352384 on dev /dev/loop0 physical 14352384\n",
    "4,678,670502141,-;BTRFS warning (device loop0): scrub: checksum error at logical 14352384 "
    "on dev /dev/loop0, physical 14352384 root 256 inode 259 offset 106496 length 4096 links 1 "
    "(path: f2)\n",
    "4,679,670502189,-;btrfs_dev_stat_inc_and_print: 25899 callbacks suppressed\n",
    "3,681,670503696,-;BTRFS error (device loop0): scrub: unable to fixup (regular) error at "
    "logical 14548992 on dev /dev/loop0 physical 14548992\n",
    "4,682,670506083,-;BTRFS warning (device loop0): scrub: checksum error at logical 14548992 "
    "on dev /dev/loop0, physical 14548992 root 256 inode 259 offset 303104 length 4096 links 1 "
    "(path: f2)\n",
]


def test_the_kernel_logs_stripe_starts_with_the_file_there() -> None:
    messages = [btrfs.parse_kmsg_record(r) for r in KMSG_STRIPE_STARTS]
    errors, described = btrfs.parse_scrub_errors(messages, {"/dev/loop0"})
    assert [e.logical for e in errors] == [14352384, 14548992]
    assert all(e.logical % btrfs.STRIPE_LEN == 0 for e in errors)
    assert [(d.root, d.inode, d.offset, d.path) for d in described] == [
        (256, 259, 106496, "f2"),
        (256, 259, 303104, "f2"),
    ]
