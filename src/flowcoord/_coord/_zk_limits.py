"""Flow control on the ZooKeeper board: the slot, partition slot and rate start a claim takes.

Each is taken inside the claim's one transaction (:mod:`._zk_claims`), so none costs a write
of its own, and each is exact under contention for the same reason:

- a queue's **concurrency** slot is an ephemeral node ``slots/<queue>/<i>``, ``i`` below the
  limit: its name is its capacity, two claims cannot create one node, and a session's slots
  vanish with it;
- a **partition** slot is an ephemeral node ``pslots/<queue>/<pd>.<i>`` (``pd`` the partition
  digest, ``i`` below the queue's ``partition_limit``), in one flat folder per queue, so no
  write ever makes or deletes a folder for a partition;
- a **rate start** is one of ``count`` persistent nodes ``rates/<queue>/<i>`` whose data is
  the time it was last taken; a claim sets one taken at least ``period`` ago, with a version
  check, so each start is taken at most once a period and no window holds more than
  ``count`` claims. The times are the claiming clients' clocks: a client whose clock runs
  ahead takes a start early by that much (keep clocks in sync, e.g. NTP). A start's time only
  grows, so a board keeps what it read (:attr:`BoardBase._rates`): a start seen taken stays
  taken until its time plus ``period`` and is not read again before then. ``claimable``
  reads again the starts it has seen free (only as many as it wants), so it leaves out a
  queue whose starts other boards took; a claim works from what the board knows, and a start
  taken since fails its version check and is read again alone.
"""

from __future__ import annotations

import contextlib
import math
import random
from abc import ABC

from ..errors import NodeExists, PartitionLimitReached, QueueLimitReached
from ._contract import QueueConfig
from ._zk_layout import partition_digest
from ._zk_records import BoardBase

__all__ = ["LimitsBoard", "free_starts"]


def free_starts(
    starts: dict[int, tuple[float, int]], period: float, now: float
) -> tuple[list[int], float]:
    """The starts free at ``now``, and when the first taken one comes back."""
    free = [i for i, (used_at, _) in starts.items() if now - used_at >= period]
    return free, min((used_at for used_at, _ in starts.values()), default=-math.inf) + period


class LimitsBoard(BoardBase, ABC):
    """Picking slots and starts (see the module docstring); claims take them."""

    async def _free_slot(self, queue: str, limit: int) -> int:
        """A slot of ``queue`` nobody holds (picked at random, so concurrent claims seldom
        collide); QueueLimitReached when ``limit`` are held."""
        held = set(await self._ls(self.layout.slots(queue)))
        free = [i for i in range(limit) if str(i) not in held]
        if len(held) >= limit or not free:
            raise QueueLimitReached(
                f"queue {queue!r} runs {len(held)} jobs across the board (its limit is {limit})",
                queue=queue,
                limit=limit,
            )
        return random.choice(free)

    async def _free_partition_slot(self, queue: str, partition: str, limit: int) -> int:
        """A slot of ``partition`` in ``queue`` nobody holds (at random); PartitionLimitReached
        when ``limit`` are held (one listing of the queue's flat ``pslots`` folder)."""
        digest = partition_digest(partition)
        held = {
            i
            for name in await self._ls(self.layout.pslots(queue))
            for d, _, i in [name.rpartition(".")]
            if d == digest
        }
        free = [i for i in range(limit) if str(i) not in held]
        if len(held) >= limit or not free:
            raise PartitionLimitReached(
                f"partition {partition!r:.80} of queue {queue!r} runs {len(held)} jobs across "
                f"the board (its limit is {limit})",
                queue=queue,
                partition=partition,
                limit=limit,
            )
        return random.choice(free)

    async def _starts(
        self, queue: str, config: QueueConfig, version: int
    ) -> dict[int, tuple[float, int]]:
        """Start i -> (when it was taken, its node's version) for the queue's rate limit, as
        last read (all read again when the queue node's ``version`` moved)."""
        assert config.rate_limit is not None
        cached = self._rates.get(queue)
        if cached is not None and cached[0] == version:
            return cached[1]
        count = config.rate_limit[0]
        starts: dict[int, tuple[float, int]] = {}
        missing = []
        for i, found in enumerate(await self._get_many(self._start_paths(queue, count))):
            if found is None:
                missing.append(i)
            else:
                starts[i] = (self._used_at(found[0]), found[1].version)
        for i in missing:  # declared before the starts were made, or deleted by hand
            starts[i] = await self._make_start(queue, i)
        self._rates[queue] = (version, starts)
        return starts

    async def _untaken_starts(
        self, queue: str, config: QueueConfig, version: int, now: float, want: float
    ) -> tuple[int, float]:
        """How many starts of the queue are free at ``now`` (read again to be sure, at most
        about ``want`` of them), and when the first taken one comes back."""
        assert config.rate_limit is not None
        period = config.rate_limit[1]
        starts = await self._starts(queue, config, version)
        maybe, _ = free_starts(starts, period, now)
        random.shuffle(maybe)
        free = 0
        while maybe and free < want:
            n = len(maybe) if want == math.inf else int(want) - free
            batch, maybe = maybe[:n], maybe[n:]
            paths = [f"{self.layout.rates(queue)}/{i}" for i in batch]
            for i, found in zip(batch, await self._get_many(paths), strict=True):
                if found is None:
                    self._rates.pop(queue, None)  # gone: all read (and made) again next time
                    continue
                starts[i] = (self._used_at(found[0]), found[1].version)
                free += now - starts[i][0] >= period
        return free, free_starts(starts, period, now)[1]

    async def _reread_start(self, queue: str, i: int) -> None:
        """Start ``i`` was taken since it was read: read it again."""
        cached = self._rates.get(queue)
        found = await self._get_or_none(f"{self.layout.rates(queue)}/{i}")
        if cached is None:
            return
        if found is None:
            self._rates.pop(queue, None)  # gone: all read (and made) again
        else:
            cached[1][i] = (self._used_at(found[0]), found[1].version)

    async def _make_start(self, queue: str, i: int) -> tuple[float, int]:
        path = f"{self.layout.rates(queue)}/{i}"
        self.writes["declare"] += 1
        with contextlib.suppress(NodeExists):
            await self.layout.make_dir(self.layout.rates(queue))
            await self.session.create(path, self._encode({"used_at": 0.0}, "rate start"))
        found = await self._get_or_none(path)
        return (self._used_at(found[0]), found[1].version) if found else (0.0, 0)

    def _start_paths(self, queue: str, count: int) -> list[str]:
        return [f"{self.layout.rates(queue)}/{i}" for i in range(count)]

    def _used_at(self, data: bytes) -> float:
        d = self._decode(data)
        return float(d.get("used_at", 0.0)) if isinstance(d, dict) else 0.0
