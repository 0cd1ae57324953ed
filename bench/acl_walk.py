"""Grant changes on a big tree: Speicher's no-follow ACL walk against ``setfacl -R`` and
``find -exec chmod`` (what it replaced), on the same tree of many small files.

    .venv/bin/python bench/acl_walk.py [--files 20000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from speicher.system import acl

ENTRY = acl.Entry("user", 20001, "rwx")


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"d{i // 100:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i:06d}.txt").write_text("x")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="acl-walk-", dir=args.dir))
    try:
        tools, ours = base / "tools", base / "ours"
        for root in (tools, ours):
            root.mkdir()
            make_tree(root, args.files)
        uid = str(os.getuid())
        spec = "u:20001:rwX,d:u:20001:rwx"
        results = {
            "setfacl -R -m": timed(
                lambda: subprocess.run(["setfacl", "-R", "-m", spec, str(tools)], check=True)
            ),
            "acl.modify_tree": timed(lambda: acl.modify_tree(ours, [ENTRY], [])),
            "find -uid -exec chmod u-w": timed(
                lambda: subprocess.run(
                    ["find", str(tools), "-xdev", "-uid", uid, "-exec", "chmod", "u-w", "{}", "+"],
                    check=True,
                )
            ),
            "acl.set_owner_write": timed(
                lambda: acl.set_owner_write(ours, [os.getuid()], writable=False)
            ),
        }
        print(f"{args.files} files in folders of 100, in {args.dir}")
        for name, seconds in results.items():
            print(f"{name:28} {seconds:7.2f} s")
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
