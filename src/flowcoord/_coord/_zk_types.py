"""Records and small value types of the ZooKeeper session layer (no I/O here); the session
states every coordination backend shares are in :mod:`._session`."""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "ACL",
    "CheckVersion",
    "CreateNode",
    "DeleteNode",
    "NodeStat",
    "OpResult",
    "Perm",
    "SetData",
    "TxnOp",
]


@dataclass(frozen=True)
class NodeStat:
    """The parts of a znode's stat flowcoord uses. ``czxid`` is unique per created node and
    grows with every create in the ensemble: it makes a good fencing token."""

    czxid: int
    mzxid: int
    pzxid: int
    version: int
    child_version: int
    acl_version: int
    ephemeral_owner: int
    num_children: int
    ctime_ms: int
    mtime_ms: int

    @property
    def ephemeral(self) -> bool:
        return self.ephemeral_owner != 0

    @classmethod
    def from_zk(cls, stat: Any) -> NodeStat:
        return cls(
            czxid=int(stat.created_zxid),
            mzxid=int(stat.last_modified_zxid),
            pzxid=int(stat.last_modified_children),
            version=int(stat.version),
            child_version=int(stat.child_version),
            acl_version=int(stat.acl_version),
            ephemeral_owner=int(stat.ephemeral_owner),
            num_children=int(stat.num_children),
            ctime_ms=int(stat.created),
            mtime_ms=int(stat.modified),
        )


class Perm(enum.IntFlag):
    """ZooKeeper ACL permission bits."""

    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


@dataclass(frozen=True)
class ACL:
    """One ACL entry: who (``scheme``/``id``) may do what (``perms``)."""

    perms: Perm
    scheme: str
    id: str

    @classmethod
    def open(cls, perms: Perm = Perm.ALL) -> ACL:
        """Anyone (``world:anyone``)."""
        return cls(perms, "world", "anyone")

    @classmethod
    def digest(cls, credentials: str, perms: Perm = Perm.ALL) -> ACL:
        """The identity that authenticates with digest ``credentials`` (``"user:password"``)."""
        user, sep, _ = credentials.partition(":")
        if not sep or not user:
            raise ConfigurationError(
                "digest credentials must look like 'user:password'",
                hint="pass auth=('digest', 'user:password')",
            )
        hashed = base64.b64encode(hashlib.sha1(credentials.encode()).digest()).decode()
        return cls(perms, "digest", f"{user}:{hashed}")


# -- transaction operations -----------------------------------------------------------------


@dataclass(frozen=True)
class CheckVersion:
    """The node at ``path`` must have data version ``version``."""

    path: str
    version: int


@dataclass(frozen=True)
class CreateNode:
    path: str
    data: bytes = b""
    ephemeral: bool = False
    sequential: bool = False


@dataclass(frozen=True)
class SetData:
    path: str
    data: bytes
    version: int


@dataclass(frozen=True)
class DeleteNode:
    path: str
    version: int = -1


TxnOp = CheckVersion | CreateNode | SetData | DeleteNode


@dataclass(frozen=True)
class OpResult:
    """Outcome of one transaction operation: the (created) path, and the new stat for
    creates and data sets (None for checks and deletes)."""

    path: str
    stat: NodeStat | None = None
