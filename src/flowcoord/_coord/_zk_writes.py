"""Writes that are safe to retry after a lost reply (see docs/concepts/zookeeper.md).

Every node's data starts with a 16-byte tag that is new for each write: ``MAGIC + tag +
data``. When the connection breaks before a write's reply, the write may or may not have been
applied. Before sending it again, the session reads the node(s) the write would have made (for
a sequential create: its siblings with the same prefix) and looks for its tag; if the tag is
there, the write was applied and its result is returned instead. aiozk simply sent the write
again, which left orphan nodes (a sequential lock node blocking everyone for the session's life).

Residual window: a write still in flight inside the ensemble when the client looks can be
applied after the look; the retry then fails (NodeExists, VersionConflict) for non-sequential
writes, and only a sequential create can still be doubled.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiozk import exc as zk_exc
from aiozk import protocol
from aiozk.protocol.acl import ACL as ZkACL

from ..errors import (
    ConfigurationError,
    CoordinationError,
    CoordinationUnavailable,
    NodeMissing,
    SessionLost,
)
from ._zk_core import ConnectionLost, SessionCore
from ._zk_errors import translate
from ._zk_types import ACL, CheckVersion, CreateNode, DeleteNode, NodeStat, OpResult, SetData, TxnOp

__all__ = ["Namespace", "TaggedWrites", "read", "unwrap"]

_MAGIC = b"\xfc\x01"  # 0xfc never starts UTF-8 text, so JSON payloads cannot look tagged
_TAGGED = len(_MAGIC) + 16
_SEQ_DIGITS = 10
_NO_TAG = bytes(16)


def wrap(tag: bytes, data: bytes) -> bytes:
    return _MAGIC + tag + bytes(data)


def unwrap(raw: bytes | None) -> tuple[bytes | None, bytes]:
    """``(tag, data)`` of a node's raw data; no tag for data flowcoord did not write."""
    if raw is None:
        return None, b""
    if len(raw) >= _TAGGED and raw[: len(_MAGIC)] == _MAGIC:
        return raw[len(_MAGIC) : _TAGGED], raw[_TAGGED:]
    return None, bytes(raw)


def check_path(path: str) -> str:
    if not path.startswith("/") or "//" in path or (len(path) > 1 and path.endswith("/")):
        raise ConfigurationError(
            f"bad ZooKeeper path {path!r}", hint="use '/a/b': absolute, no trailing '/'"
        )
    return path


class Namespace:
    """Maps paths inside the namespace (``/jobs``) to ZooKeeper paths (``/app/jobs``)."""

    def __init__(self, namespace: str) -> None:
        self.root = check_path(namespace).rstrip("/")

    def full(self, path: str) -> str:
        check_path(path)
        if path == "/":
            return self.root or "/"
        return self.root + path

    def relative(self, full: str) -> str:
        if self.root and full.startswith(self.root + "/"):
            return full[len(self.root) :]
        return "/" if full == self.root else full


async def read(core: SessionCore, request: Any) -> Any:
    """Send a read, again after every lost connection (reads are safe to repeat)."""
    while True:
        try:
            return await core.call(request)
        except ConnectionLost:
            continue


def zk_acl(entry: ACL) -> Any:
    zk_entry = ZkACL.make(entry.scheme, entry.id)
    zk_entry.perms = int(entry.perms)
    return zk_entry


class TaggedWrites:
    """Creates, sets and transactions that are retried only when it is safe (see module)."""

    def __init__(self, core: SessionCore, namespace: Namespace, acl: list[ACL]) -> None:
        self._core = core
        self._ns = namespace
        self._acl = [zk_acl(entry) for entry in acl]

    async def write(
        self, ops: list[TxnOp], what: str, *, created_stats: bool = True
    ) -> list[OpResult]:
        """Send ``ops`` (one request, or a multi); after a lost reply, find out whether they
        were applied before sending them again. ZooKeeper answers a create inside a multi
        with its path only: with ``created_stats`` its stat is read back (a read per create);
        without, such a result has no stat (callers that know what they need: a new node's
        version is 0, and its czxid is the transaction's zxid, the mzxid of any node the
        same multi set). A result found after a lost reply always has its stat."""
        tag = uuid.uuid4().bytes
        single = len(ops) == 1 and not isinstance(ops[0], CheckVersion | DeleteNode)
        if single:
            request = self._request(ops[0], tag)
        else:
            request = protocol.TransactionRequest()
            for op in ops:
                request.add(self._request(op, tag))
        generation = self._core.generation
        ephemeral = any(isinstance(op, CreateNode) and op.ephemeral for op in ops)
        tagged = any(isinstance(op, CreateNode | SetData) for op in ops)
        attempts = 0
        while True:
            if attempts:
                if not tagged:
                    raise CoordinationUnavailable(
                        f"ZooKeeper {what}: connection lost before the reply; outcome unknown",
                        hint="read the nodes to find out whether it was applied",
                    )
                if ephemeral and self._core.generation != generation:
                    raise SessionLost(
                        f"ZooKeeper {what}: the session was lost while creating an "
                        "ephemeral node; it is gone with that session"
                    )
                found = await self._find_applied(ops, tag)
                if found is not None:
                    return found
            try:
                response = await self._core.call(request)
            except ConnectionLost:
                attempts += 1
                continue
            if single:
                return [self._op_result(ops[0], response)]
            results = self._txn_results(ops, response)
            if not created_stats:
                return results
            return await self._created_stats(ops, results, tag)

    async def ensure(self, full: str, what: str, path: str | None) -> None:
        """Create ``full`` and its missing ancestors (persistent, empty)."""
        current = ""
        for part in full.strip("/").split("/"):
            current += "/" + part
            request = protocol.Create2Request(path=current, data=wrap(_NO_TAG, b""), acl=self._acl)
            request.set_flags(ephemeral=False, sequential=False, container=False)
            while True:
                try:
                    await self._core.call(request)
                except ConnectionLost:
                    continue  # NodeExists on the next try is as good as success
                except zk_exc.NodeExists:
                    pass
                except zk_exc.ZKError as exc:
                    raise translate(exc, path or current, what) from exc
                break

    # -- internals --------------------------------------------------------------------------

    def _request(self, op: TxnOp, tag: bytes) -> Any:
        full = self._ns.full(op.path)
        if isinstance(op, CreateNode):
            request = protocol.Create2Request(path=full, data=wrap(tag, op.data), acl=self._acl)
            request.set_flags(ephemeral=op.ephemeral, sequential=op.sequential, container=False)
            return request
        if isinstance(op, SetData):
            return protocol.SetDataRequest(path=full, data=wrap(tag, op.data), version=op.version)
        if isinstance(op, CheckVersion):
            return protocol.CheckVersionRequest(path=full, version=op.version)
        return protocol.DeleteRequest(path=full, version=op.version)

    def _op_result(self, op: TxnOp, response: Any) -> OpResult:
        stat = getattr(response, "stat", None)
        path = getattr(response, "path", None)
        return OpResult(
            self._ns.relative(path) if path else op.path,
            NodeStat.from_zk(stat) if stat is not None else None,
        )

    def _txn_results(self, ops: list[TxnOp], response: Any) -> list[OpResult]:
        # A failed multi comes back as a list of per-op errors under a success header
        # (aiozk's Transaction recipe turned that into an empty, falsy result instead of an
        # error; docs/concepts/zookeeper.md).
        replies = list(response.responses)
        for op, reply in zip(ops, replies, strict=False):
            if isinstance(reply, Exception) and not isinstance(
                reply, zk_exc.RolledBack | zk_exc.RuntimeInconsistency
            ):
                raise translate(reply, op.path, f"transaction {type(op).__name__}")
        if len(replies) != len(ops) or any(isinstance(r, Exception) for r in replies):
            raise CoordinationError("ZooKeeper transaction failed without saying why")
        return [self._op_result(op, reply) for op, reply in zip(ops, replies, strict=True)]

    async def _created_stats(
        self, ops: list[TxnOp], results: list[OpResult], tag: bytes
    ) -> list[OpResult]:
        """ZooKeeper answers a create inside a multi with its path only: read the stats."""
        filled = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(op, CreateNode) and result.stat is None:
                found = await self._tagged_node(self._ns.full(result.path), tag)
                if found is None:
                    raise NodeMissing(
                        f"the node {result.path!r} was created, then deleted or replaced "
                        "before its stat could be read",
                        path=result.path,
                    )
                result = found
            filled.append(result)
        return filled

    async def _find_applied(self, ops: list[TxnOp], tag: bytes) -> list[OpResult] | None:
        """The results of ``ops`` if the nodes they create or set carry ``tag``, else None."""
        results = []
        for op in ops:
            if isinstance(op, CreateNode | SetData):
                found = await self._find_tagged(op, tag)
                if found is None:
                    return None
                results.append(found)
            else:
                results.append(OpResult(op.path))
        return results

    async def _find_tagged(self, op: CreateNode | SetData, tag: bytes) -> OpResult | None:
        full = self._ns.full(op.path)
        if not (isinstance(op, CreateNode) and op.sequential):
            return await self._tagged_node(full, tag)
        parent, _, prefix = full.rpartition("/")
        try:
            request = protocol.GetChildrenRequest(path=parent or "/", watch=False)
            names = (await read(self._core, request)).children
        except zk_exc.NoNode:
            return None
        candidates = [
            f"{parent}/{name}"
            for name in names
            if name.startswith(prefix)
            and len(name) == len(prefix) + _SEQ_DIGITS
            and name[len(prefix) :].isdigit()
        ]
        for candidate in sorted(candidates, reverse=True):
            found = await self._tagged_node(candidate, tag)
            if found is not None:
                return found
        return None

    async def _tagged_node(self, full: str, tag: bytes) -> OpResult | None:
        try:
            response = await read(self._core, protocol.GetDataRequest(path=full, watch=False))
        except zk_exc.NoNode:
            return None
        if unwrap(response.data)[0] != tag:
            return None
        return OpResult(self._ns.relative(full), NodeStat.from_zk(response.stat))
