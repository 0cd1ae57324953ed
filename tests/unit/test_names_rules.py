"""Rules for the names and sizes a user types."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from speicher import names

# -- pools -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["abc", "tank", "pool-1", "a1b", "a--b", "p" + "x" * 30 + "9", "a" * 32],
)
def test_good_pool_names(name: str) -> None:
    assert names.pool_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "ab",  # 2 characters: one too short
        "a" * 33,  # one too long
        "1abc",  # must start with a letter
        "-abc",
        "abc-",
        "Tank",  # the rule applies to the stored, lower-cased name
        "tank_1",
        "my.pool",
        "my pool",
        "pööl",
    ],
)
def test_bad_pool_names(name: str) -> None:
    reason = names.pool_name(name)
    assert reason is not None
    assert reason.startswith("must be 3-32 characters")


# -- what admins type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "check"),
    [
        ("Finance", names.share_name),
        ("HR", names.share_name),
        ("IT", names.share_name),
        ("hr_dept", names.share_name),
        ("Sales-2024", names.share_name),
        ("bob.smith", names.account_name),
        ("Bob.Smith", names.account_name),
        ("hr_dept", names.account_name),
        ("Tank", names.pool_name),
    ],
)
def test_names_admins_commonly_type_are_accepted_in_lower_case(
    typed: str, check: Callable[[str], str | None]
) -> None:
    assert names.normalize(typed) == typed.lower()
    assert check(names.normalize(typed)) is None


# -- shares ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "hr",
        "it",
        "abc",
        "docs",
        "1st-floor",
        "123",
        "a-b",
        "a--b",
        "hr_dept",
        "x" * 63,
        "globals",
        "xn-abc",
        "sthree",
    ],
)
def test_good_share_names(name: str) -> None:
    assert names.share_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "x" * 64,
        "-abc",
        "abc-",
        "_abc",
        "Docs",
        "my.share",  # dots break virtual-host style S3 URLs
        "my share",
        "dösen",
    ],
)
def test_share_names_of_the_wrong_shape(name: str) -> None:
    reason = names.share_name(name)
    assert reason is not None
    assert reason.startswith("must be 2-63 characters: letters (stored in lower case)")


@pytest.mark.parametrize(
    "name",
    ["a--b", "xn-abc", "xn--abc", "sthree-x", "sthree-configurator", "amzn-s3-demo-x", "x-s3alias"],
)
def test_share_names_reserved_by_s3_cannot_be_buckets(name: str) -> None:
    assert names.share_name(name) is None
    reason = names.bucket_name(name)
    assert reason is not None and "reserved by S3" in reason


@pytest.mark.parametrize("name", ["hr", "hr_dept"])
def test_short_or_underscored_shares_cannot_be_buckets(name: str) -> None:
    reason = names.bucket_name(name)
    assert reason is not None and reason.startswith("an S3 bucket name must be 3-63")


@pytest.mark.parametrize("name", ["finance", "1st-floor", "x" * 63])
def test_good_bucket_names(name: str) -> None:
    assert names.bucket_name(name) is None


@pytest.mark.parametrize(
    "name", ["global", "homes", "printers", "print", "ipc", "admin", "api", "dav"]
)
def test_share_names_reserved_by_smb_and_the_server(name: str) -> None:
    assert names.share_name(name) == f"'{name}' is reserved"


# -- accounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "_",
        "alice",
        "_svc",
        "bob-2",
        "build_bot",
        "bob.smith",
        "a.b.c",
        "x" * 32,
        "rooty",
        "roots",
    ],
)
def test_good_account_names(name: str) -> None:
    assert names.account_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 33,
        "Alice",
        "1alice",
        "-alice",
        ".alice",
        "alice.",
        "al..ice",
        "al ice",
        "alice$",
        "élise",
    ],
)
def test_bad_account_names(name: str) -> None:
    assert names.account_name(name) == (
        "must be 1-32 characters: letters (stored in lower case), digits, '_', '-' and '.', "
        "starting with a letter or '_' and not ending with '.'"
    )


def test_account_name_length_leaves_room_for_a_prefix() -> None:
    assert names.account_name("x" * 28, max_length=28) is None
    reason = names.account_name("x" * 29, max_length=28)
    assert reason is not None
    assert reason.startswith("must be 1-28 characters")


@pytest.mark.parametrize("name", ["root", "nobody", "www-data", "_apt", "speicher", "sudo"])
def test_account_names_reserved_for_the_system(name: str) -> None:
    assert names.account_name(name) == f"'{name}' is reserved for the system"


# -- disks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "disk1", "sda", "disk_1", "d-1", "d" * 63])
def test_good_disk_names(name: str) -> None:
    assert names.disk_name(name) is None


@pytest.mark.parametrize("name", ["", "d" * 64, "_disk", "-disk", "Disk", "disk/1", "a b"])
def test_bad_disk_names(name: str) -> None:
    assert names.disk_name(name) == (
        "must be 1-63 characters: lower-case letters, digits, '_' and '-'"
    )


# -- all names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "check",
    [names.pool_name, names.share_name, names.account_name, names.disk_name],
    ids=["pool", "share", "account", "disk"],
)
@pytest.mark.parametrize("name", ["tank\n", "\ntank", "ta\nnk", "tank\t"])
def test_no_name_may_hold_a_line_break_or_tab(
    check: Callable[[str], str | None], name: str
) -> None:
    # names end up in mount paths, btrfs labels, smb.conf sections and /etc/passwd
    assert check(name) is not None


# -- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("500", 500),
        ("500B", 500),
        ("1K", 1024),
        ("500M", 500 * 1024**2),
        ("10G", 10 * 1024**3),
        ("10g", 10 * 1024**3),
        ("10GB", 10 * 1024**3),
        ("10GiB", 10 * 1024**3),
        ("10gib", 10 * 1024**3),
        ("10 G", 10 * 1024**3),
        (" 10G ", 10 * 1024**3),
        ("1.5G", 1610612736),
        ("2T", 2 * 1024**4),
        ("1P", 1024**5),
        ("0.5K", 512),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert names.parse_size(text) == size


@pytest.mark.parametrize("value", [0, 1, 10 * 1024**3])
def test_parse_size_passes_byte_counts_through(value: int) -> None:
    assert names.parse_size(value) == value


def test_parse_size_rejects_negative_byte_counts() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        names.parse_size(-1)


@pytest.mark.parametrize(
    "text", ["", " ", "G", "-1G", "10X", "10E", "1e3", ".5G", "1,5G", "10 GB B", "ten"]
)
def test_parse_size_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError) as info:
        names.parse_size(text)
    assert str(info.value) == f"'{text}' is not a size (examples: 500M, 10G, 2T)"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "-"),
        (0, "0B"),
        (1, "1B"),
        (1023, "1023B"),
        (1024, "1.0K"),
        (1536, "1.5K"),
        (1024**2, "1.0M"),
        (int(2.5 * 1024**3), "2.5G"),
        (1024**4, "1.0T"),
        (1024**5, "1.0P"),
        (1048575, "1.0M"),  # rounds up to the next unit, never "1024.0K"
        (-2048, "-2.0K"),
        (1536.0, "1.5K"),
    ],
)
def test_format_size(size: int | float | None, text: str) -> None:
    assert names.format_size(size) == text


@pytest.mark.parametrize("text", ["500M", "10G", "1.5G", "3T", "1023"])
def test_format_size_reads_back_as_the_same_size(text: str) -> None:
    size = names.parse_size(text)
    assert names.parse_size(names.format_size(size)) == size
