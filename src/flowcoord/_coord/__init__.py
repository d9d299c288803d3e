"""Coordination: sessions with the coordination service (ZooKeeper) and what is built on them."""

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
