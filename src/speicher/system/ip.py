"""The host's network addresses: ``ip -json address show``.

The API's self-signed certificate names them, and the start banner lists them, because
"0.0.0.0" tells a newcomer nothing about where to point a browser or the CLI.
"""

from __future__ import annotations

import ipaddress
import json

from speicher.system.run import run


def parse_addresses(output: str) -> list[str]:
    """Addresses of interfaces that are up, without link-local ones (they need a zone, and
    no certificate can name them); loopback first, then in the kernel's order."""
    if not output.strip():
        return []
    found: list[str] = []
    for link in json.loads(output):
        if "UP" not in link.get("flags", []):
            continue
        for info in link.get("addr_info", []):
            local = info.get("local")
            if not local or info.get("family") not in ("inet", "inet6"):
                continue
            address = ipaddress.ip_address(local)
            if address.is_link_local or local in found:
                continue
            found.append(local)
    return sorted(found, key=lambda a: not ipaddress.ip_address(a).is_loopback)


def addresses() -> list[str]:
    """The host's addresses; empty if ``ip`` is missing or fails (callers add loopback)."""
    result = run(["ip", "-json", "address", "show"], check=False, timeout=10)
    if result.returncode != 0:
        return []
    try:
        return parse_addresses(result.stdout)
    except (ValueError, TypeError, AttributeError):
        return []
