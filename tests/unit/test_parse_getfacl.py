"""``getfacl --numeric --omit-header --absolute-names DIR``, recorded with acl 2.3.1."""

from __future__ import annotations

import pytest

from speicher.system import acl

# after `setfacl -m u:20001:rwx,g:20002:r-x,d:u:20001:rwx,d:g:20002:r-x DIR`
GETFACL_NAMED = """\
user::rwx
user:20001:rwx
group::r-x
group:20002:r-x
mask::rwx
other::r-x
default:user::rwx
default:user:20001:rwx
default:group::r-x
default:group:20002:r-x
default:mask::rwx
default:other::r-x

"""

# after `setfacl -m u:20001:rwx,g:20002:rwx,u:0:r-x,m::r-x DIR`: the mask cuts the named entries
GETFACL_MASKED = """\
user::rwx
user:0:r-x
user:20001:rwx\t#effective:r-x
group::r-x
group:20002:rwx\t#effective:r-x
mask::r-x
other::r-x

"""

# a directory without an extended ACL
GETFACL_PLAIN = """\
user::rwx
group::r-x
other::r-x

"""


def test_named_access_entries_only() -> None:
    # default: entries and the owner/group/mask/other entries are not named entries
    assert acl.parse_getfacl(GETFACL_NAMED) == [
        acl.Entry("user", 20001, "rwx"),
        acl.Entry("group", 20002, "r-x"),
    ]


def test_effective_comment_is_dropped_and_granted_perms_kept() -> None:
    assert acl.parse_getfacl(GETFACL_MASKED) == [
        acl.Entry("user", 0, "r-x"),
        acl.Entry("user", 20001, "rwx"),
        acl.Entry("group", 20002, "rwx"),
    ]


@pytest.mark.parametrize("output", [GETFACL_PLAIN, ""])
def test_no_named_entries(output: str) -> None:
    assert acl.parse_getfacl(output) == []
