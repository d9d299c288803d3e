"""Test harness for flowcoord and its users: throw-away servers and fault injection."""

from ._explorer import Action as Action
from ._explorer import CrashExactnessError as CrashExactnessError
from ._explorer import CrashExplorer as CrashExplorer
from ._explorer import ExplorationReport as ExplorationReport
from ._invariants import Violation as Violation
from ._postgres import PostgresCommandError as PostgresCommandError
from ._postgres import PostgresNotInstalled as PostgresNotInstalled
from ._postgres import TemporaryPostgres as TemporaryPostgres
from ._proxy import FaultProxy as FaultProxy
from ._zookeeper import ZooKeeperEnsemble as ZooKeeperEnsemble
from ._zookeeper import ZooKeeperNotInstalled as ZooKeeperNotInstalled
from ._zookeeper import ZooKeeperServer as ZooKeeperServer

__all__ = [
    "Action",
    "CrashExactnessError",
    "CrashExplorer",
    "ExplorationReport",
    "FaultProxy",
    "PostgresCommandError",
    "PostgresNotInstalled",
    "TemporaryPostgres",
    "Violation",
    "ZooKeeperEnsemble",
    "ZooKeeperNotInstalled",
    "ZooKeeperServer",
]
