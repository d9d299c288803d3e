"""Coordination: sessions with the coordination service (ZooKeeper) and what is built on them."""

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from ._zk_board import ZooKeeperJobBoard as ZooKeeperJobBoard
    from ._zk_session import Watcher as Watcher
    from ._zk_session import ZooKeeperSession as ZooKeeperSession
    from ._zk_types import ACL as ACL
    from ._zk_types import CheckVersion as CheckVersion
    from ._zk_types import CreateNode as CreateNode
    from ._zk_types import DeleteNode as DeleteNode
    from ._zk_types import NodeStat as NodeStat
    from ._zk_types import OpResult as OpResult
    from ._zk_types import Perm as Perm
    from ._zk_types import SessionState as SessionState
    from ._zk_types import SetData as SetData
    from ._zk_types import StateChange as StateChange
    from ._zk_types import StateListener as StateListener

# Loaded on first use: the ZooKeeper modules bring aiozk.
_LAZY = {
    "ZooKeeperJobBoard": "._zk_board",
    "Watcher": "._zk_session",
    "ZooKeeperSession": "._zk_session",
    "ACL": "._zk_types",
    "CheckVersion": "._zk_types",
    "CreateNode": "._zk_types",
    "DeleteNode": "._zk_types",
    "NodeStat": "._zk_types",
    "OpResult": "._zk_types",
    "Perm": "._zk_types",
    "SessionState": "._zk_types",
    "SetData": "._zk_types",
    "StateChange": "._zk_types",
    "StateListener": "._zk_types",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = [
    "ACL",
    "CheckVersion",
    "CreateNode",
    "DeleteNode",
    "NodeStat",
    "OpResult",
    "Perm",
    "SessionState",
    "SetData",
    "StateChange",
    "StateListener",
    "Watcher",
    "ZooKeeperJobBoard",
    "ZooKeeperSession",
]
