"""Test harness for flowcoord and its users: throw-away servers and fault injection."""

from ._postgres import PostgresCommandError as PostgresCommandError
from ._postgres import PostgresNotInstalled as PostgresNotInstalled
from ._postgres import TemporaryPostgres as TemporaryPostgres
from ._proxy import FaultProxy as FaultProxy
from ._zookeeper import ZooKeeperEnsemble as ZooKeeperEnsemble
from ._zookeeper import ZooKeeperNotInstalled as ZooKeeperNotInstalled
from ._zookeeper import ZooKeeperServer as ZooKeeperServer

__all__ = [
    "FaultProxy",
    "PostgresCommandError",
    "PostgresNotInstalled",
    "TemporaryPostgres",
    "ZooKeeperEnsemble",
    "ZooKeeperNotInstalled",
    "ZooKeeperServer",
]
