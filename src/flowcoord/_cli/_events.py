"""``flowcoord flows send-event``: an event to a flow's mailbox, for its workflow's
``ctx.wait_event(topic)`` (the engine running it finds it at once on PostgreSQL, within
about 50 ms on SQLite)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio

from .._codec import Codec
from .._engine._mailbox import Mailbox
from .._journal._urls import open_journal, redact
from ..errors import ConfigurationError, FlowNotFound
from ._common import EXIT_OK


def _value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"--value is not JSON: {exc.msg} at character {exc.pos}",
            hint="""quote a string as JSON: --value '"yes"' (or give a number, true, {...})""",
        ) from None


def cmd_flows_send_event(args: argparse.Namespace) -> int:
    value = _value(args.value)
    backend = open_journal(args.journal, must_exist=True)

    async def send() -> Any:
        async with backend:
            try:
                return await Mailbox(backend, Codec()).send(
                    args.flow_id, args.topic, value, key=args.key
                )
            except FlowNotFound:
                raise FlowNotFound(
                    f"no flow {args.flow_id!r} in the journal {redact(args.journal)}",
                    flow_id=args.flow_id,
                    hint="list flows with: flowcoord flows list --journal URL",
                ) from None

    event = anyio.run(send)
    if args.json:
        shape = {"flow_id": event.flow_id, "topic": event.topic, "seq": event.seq}
        print(json.dumps({**shape, "key": event.key, "sent_at": event.sent_at}))
    else:
        print(f"sent event {event.topic!r} #{event.seq} to flow {event.flow_id} (key {event.key})")
    return EXIT_OK
