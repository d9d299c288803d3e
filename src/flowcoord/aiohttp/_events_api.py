"""``POST /flows/{flow_id}/events/{topic}``: an event to a flow's mailbox (see
:meth:`flowcoord.Engine.send_event`), for its workflow's ``ctx.wait_event(topic)``."""

from __future__ import annotations

from aiohttp import web

from .._journal._sent import TOPIC_RULE, check_topic
from ..errors import ConfigurationError
from ._errors import ApiError
from ._requests import _authorize, _body, _flow_id, _json
from ._state import get_engine

__all__ = ["add_event_routes"]


def add_event_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/flows/{{flow_id}}/events/{{topic}}", send_event)


async def send_event(request: web.Request) -> web.Response:
    """``{"value"?: any, "key"?: text}``: sent, durably (201 with the event; under a key
    sent before, the event that key names, nothing sent again); 404 if the journal has no
    such flow."""
    _authorize(request)
    flow_id = _flow_id(request)
    topic = request.match_info["topic"]
    try:
        check_topic(topic)
    except ConfigurationError:
        raise ApiError(
            400, f"invalid event topic {topic[:80]!r}", f"a topic is {TOPIC_RULE}"
        ) from None
    body = await _body(request)
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise ApiError(400, "field 'key' must be a string", "send the send's idempotency key")
    engine = get_engine(request)
    event = await engine.send_event(flow_id, topic, body.get("value"), key=key)
    view = {
        "flow_id": event.flow_id,
        "topic": event.topic,
        "seq": event.seq,
        "key": event.key,
        "sent_at": event.sent_at,
    }
    return _json(view, 201)
