"""The one boundary where aiozk's exceptions become flowcoord errors."""

from __future__ import annotations

from aiozk import exc as zk_exc

from ..errors import (
    AccessDenied,
    AuthFailed,
    CoordinationError,
    CoordinationUnavailable,
    FlowcoordError,
    NodeExists,
    NodeMissing,
    NodeNotEmpty,
    SessionLost,
    VersionConflict,
)
from ._zk_core import ConnectionLost

__all__ = ["translate"]


def translate(exc: BaseException, path: str | None, what: str) -> FlowcoordError:
    """The one place where aiozk's (and the connection's) exceptions become flowcoord's."""
    where = f" {path!r}" if path else ""
    if isinstance(exc, FlowcoordError):
        return exc
    if isinstance(exc, zk_exc.NoNode):
        return NodeMissing(f"{what}{where}: no such node (or no parent)", path=path)
    if isinstance(exc, zk_exc.NodeExists):
        return NodeExists(f"{what}{where}: the node exists", path=path)
    if isinstance(exc, zk_exc.BadVersion):
        return VersionConflict(
            f"{what}{where}: the node's version changed", path=path, hint="re-read it and retry"
        )
    if isinstance(exc, zk_exc.NotEmpty):
        return NodeNotEmpty(f"{what}{where}: the node has children", path=path)
    if isinstance(exc, zk_exc.NoAuth):
        return AccessDenied(
            f"{what}{where}: the node's ACL refuses this session",
            path=path,
            hint="connect with the auth=('digest', 'user:password') that created it",
        )
    if isinstance(exc, zk_exc.AuthFailed):
        return AuthFailed(f"{what}{where}: ZooKeeper refused the credentials")
    if isinstance(exc, zk_exc.SessionExpired):
        return SessionLost(f"{what}{where}: the ZooKeeper session expired")
    if isinstance(exc, ConnectionLost | zk_exc.ConnectError | zk_exc.ConnectionLoss):
        return CoordinationUnavailable(f"{what}{where}: connection to ZooKeeper lost")
    if isinstance(exc, zk_exc.NoChildrenForEphemerals):
        return CoordinationError(f"{what}{where}: ephemeral nodes cannot have children")
    name = type(exc).__name__
    return CoordinationError(f"{what}{where}: ZooKeeper answered {name}", hint=str(exc) or None)
