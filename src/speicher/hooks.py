"""Hooks: how a domain service tells the layers above that something changed, without
importing them (arrows point down). The composition root subscribes the protocol services.

Hooks run synchronously inside the operation that emits them; an exception fails the
operation, so (for example) a user whose SMB password could not be set is not created.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

Handler = Callable[..., None]

SHARES_CHANGED = "shares.changed"  # a share, its settings or its grants changed
# name, unix_name, password: a user was created or got a new password
USER_PASSWORD = "user.password"  # noqa: S105 - the name of a hook, not a password
USER_STATE = "user.state"  # name, unix_name, enabled
USER_DELETED = "user.deleted"  # name, unix_name
# name: end the user's sessions now, before anything slower (the ransomware response); the
# user is disabled right after, which USER_STATE tells
USER_CUT = "user.cut"
# asked before something is deleted; a handler raises (Forbidden) to refuse
SHARE_DELETING = "share.deleting"  # share
POOL_DESTROYING = "pool.destroying"  # pool, shares


class Hooks:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, hook: str, handler: Handler) -> None:
        self._handlers[hook].append(handler)

    def emit(self, hook: str, /, **kwargs: Any) -> None:
        for handler in self._handlers[hook]:
            handler(**kwargs)
