"""A bounded fingerprint of a request, for repeat (loop) detection at constant cost.

Hashing the whole request (``repr(messages)``) costs time in proportion to the history
(0.77 ms at 200 KB, 37 ms with one 5 MB image) and never matches in a real agent loop,
whose history grows every turn. An agent stuck in a loop repeats its *last turns*: the
same tool call with the same arguments, the same tool result, the same user message. So
the fingerprint is the model and the last `TURNS` messages, each reduced to role,
content, tool calls and name, with ids left out (a tool call id is fresh on every call)
and every string cut to its length plus its first and last `EDGE` characters. The work
is bounded by `TURNS`, `EDGE`, `ITEMS` and `DEPTH`, whatever the request's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

TURNS: Final = 2  # the last messages that make a turn: the call and its tool result
EDGE: Final = 512  # characters kept from each end of a long string
ITEMS: Final = 16  # elements kept from each list or mapping
DEPTH: Final = 5  # nesting levels followed
_IDS: Final = frozenset({"id", "tool_call_id", "call_id", "tool_use_id", "cache_control"})
_FIELDS: Final = (
    *("role", "type", "name", "content", "text", "tool_calls", "function", "arguments", "output", "input"),
)


def _text(value: str) -> object:
    if len(value) <= 2 * EDGE:
        return value
    return (len(value), value[:EDGE], value[-EDGE:])


def _reduce(value: object, depth: int) -> object:
    kind = type(value)
    if kind is str:
        return _text(value)  # type: ignore[arg-type]
    if value is None or kind is int or kind is float or kind is bool:
        return value
    if depth >= DEPTH:
        return kind.__name__
    if kind is dict:  # the common case, without the ABC checks below
        items = [(k, v) for k, v in value.items() if k not in _IDS]  # type: ignore[attr-defined]
        return (len(items), tuple((str(k), _reduce(v, depth + 1)) for k, v in items[:ITEMS]))
    if kind is list or kind is tuple:
        return (len(value), tuple(_reduce(v, depth + 1) for v in value[:ITEMS]))  # type: ignore[arg-type,index]
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bytes | bytearray):
        return (len(value), bytes(value[:EDGE]), bytes(value[-EDGE:]))
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items() if k not in _IDS]
        return (len(items), tuple((str(k), _reduce(v, depth + 1)) for k, v in items[:ITEMS]))
    if isinstance(value, Sequence):
        return (len(value), tuple(_reduce(v, depth + 1) for v in value[:ITEMS]))
    # an SDK object (pydantic model, typed dict-like): its conversational fields only
    fields = tuple((f, _reduce(getattr(value, f), depth + 1)) for f in _FIELDS if hasattr(value, f))
    return fields or type(value).__name__


def fingerprint(model: str | None, messages: object) -> int:
    """The model and the last turns of `messages` (a list of messages, or a prompt string)."""
    if isinstance(messages, Sequence) and not isinstance(messages, str | bytes | bytearray):
        last: object = tuple(_reduce(m, 1) for m in messages[-TURNS:])
    else:
        last = _reduce(messages, 1)
    return hash((model, last))
