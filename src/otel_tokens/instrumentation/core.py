"""Patching, timing, guarding and stream finalisation, shared by every SDK adapter.

An adapter describes an endpoint with an `Endpoint`: how to read the request, how to read
the usage of a response, and how to observe a stream. The core wraps the SDK method so
that telemetry runs around the user's call and never inside its result: the SDK's own
return objects and exceptions pass through unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from otel_tokens import deferred
from otel_tokens import names as n
from otel_tokens.attribution.context import current_scope
from otel_tokens.budgets.errors import BudgetExceeded
from otel_tokens.guard import guarded, internal_error
from otel_tokens.pricing.providers import ProviderResolver
from otel_tokens.record import CallRecord
from otel_tokens.telemetry.callstate import CallState, enter_call, exit_call
from otel_tokens.telemetry.recorder import Call, Recorder

if TYPE_CHECKING:
    from otel_tokens.budgets.gate import Gate, Ticket


class StreamObserver(Protocol):
    def observe(self, item: Any) -> None: ...
    def record(self, base: CallRecord, *, complete: bool) -> CallRecord: ...


@dataclass(frozen=True)
class Endpoint:
    """What the core needs to know about one SDK method."""

    provider: str
    operation: str
    # response object -> record (base record carries request facts)
    from_response: Callable[[Any, CallRecord], CallRecord]
    # new observer for one stream
    stream_observer: Callable[[], StreamObserver] | None = None
    # True when the method always streams (e.g. a `.stream()` helper's raw request)
    always_stream: bool = False
    # messages-like request field used for repeat detection and content capture
    messages_key: str | None = "messages"
    # (resource, provider resolver) -> (provider, server) for SDKs without a Stainless client's
    # ``base_url`` or whose provider depends on the client (Gemini API vs Vertex)
    resolve: Callable[[Any, ProviderResolver], tuple[str, tuple[str, int | None] | None]] | None = None
    # the method returns a plain (async) iterator of chunks, which the core wraps and returns
    # instead (a sync generator function's call starts at its first chunk)
    iterates: bool = False
    # resource -> the provider its SDK client was built for (AnthropicBedrock: aws.bedrock),
    # what the resolver falls back to when the base URL decides nothing; None: `provider`
    sdk_provider_of: Callable[[Any], str] | None = None
    # result -> the iterable stream object inside it (botocore's EventStream in a dict), or None
    stream_in: Callable[[Any], Any] | None = None
    # request kwargs -> whether a stream asked for usage (True/False), None when it did not say
    usage_option: Callable[[Mapping[str, Any]], bool | None] | None = None


# Set while a gateway SDK's call (litellm) is in progress: the SDKs it drives record nothing,
# so one call gives one usage-bearing span whichever layer sees it.
_outer: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_tokens_outer_call", default=False)


class _Active:
    recorder: Recorder | None = None
    capture_content: bool = False
    gate: Gate | None = None  # budgets (OTEL_TOKENS_BUDGETS), checked before each call


active = _Active()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def set_recorder(recorder: Recorder | None) -> None:
    active.recorder = recorder
    active.capture_content = _truthy(os.environ.get(n.ENV_CAPTURE_CONTENT))
    active.gate = None
    if recorder is not None and os.environ.get(n.ENV_BUDGETS):
        with guarded("budgets"):
            from otel_tokens.budgets.gate import gate_from_env

            active.gate = gate_from_env(lambda: recorder.pricer, recorder.meter)


def _server_of(resource: Any, recorder: Recorder, sdk_provider: str) -> tuple[str, tuple[str, int | None]]:
    """(gen_ai.provider.name, (host, port)) of the client behind `resource`, cached on it."""
    resolver = recorder.pricer.providers
    cached = resource.__dict__.get("_otel_tokens_server")
    if cached is None or cached[0] is not resolver or cached[1] != sdk_provider:
        url = resource._client.base_url
        port = url.port
        if port is None:
            port = 443 if url.scheme == "https" else 80
        provider = resolver.resolve(sdk_provider, url.host, port, url.path)
        cached = (resolver, sdk_provider, provider, (url.host, port))
        resource.__dict__["_otel_tokens_server"] = cached
    return cached[2], cached[3]


def _content_attributes(kwargs: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if key and key in kwargs:
        out[n.GEN_AI_INPUT_MESSAGES] = json.dumps(kwargs[key], default=str)
    system = kwargs.get("system") or kwargs.get("instructions")
    if isinstance(system, str | list):
        out[n.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps(system, default=str)
    return out


def _request_text(kwargs: Mapping[str, Any], key: str) -> str | None:
    """A string request parameter, given directly or through ``extra_body``."""
    value = kwargs.get(key)
    if value is None:
        extra = kwargs.get("extra_body")
        value = extra.get(key) if isinstance(extra, dict) else None
    return value if isinstance(value, str) and value else None


def _error_type(exc: BaseException) -> str:
    return type(exc).__qualname__


class _Pending:
    """Request facts captured at call start, used to build the final record."""

    __slots__ = ("base", "call", "ticket")

    def __init__(self, call: Call, base: CallRecord) -> None:
        self.call = call
        self.base = base
        self.ticket: Ticket | None = None


def _admit(pending: _Pending, kwargs: Mapping[str, Any]) -> None:
    """The pre-call hook: a hard budget may refuse the call before anything is sent."""
    gate = active.gate
    if gate is None:
        return
    try:
        pending.ticket = gate.admit(pending.base, kwargs, current_scope().span_attributes)
    except BudgetExceeded as exc:
        _finish(pending, pending.base.evolve(error_type=_error_type(exc), blocked_by=exc.budget))
        raise
    except Exception as exc:
        internal_error("budget check", exc)


def _begin(endpoint: Endpoint, resource: Any, kwargs: Mapping[str, Any]) -> _Pending | None:
    if deferred.pending():  # streams finalised by the garbage collector since the last call
        deferred.drain()
    recorder = active.recorder
    if recorder is None or _outer.get():
        return None
    try:
        model = kwargs.get("model")
        model = model if isinstance(model, str) else None
        stream = True if endpoint.always_stream else kwargs.get("stream") is True
        server: tuple[str, int | None] | None
        if endpoint.resolve is None:
            sdk = (
                endpoint.provider if endpoint.sdk_provider_of is None else endpoint.sdk_provider_of(resource)
            )
            provider, server = _server_of(resource, recorder, sdk)
        else:
            provider, server = endpoint.resolve(resource, recorder.pricer.providers)
        messages = kwargs.get(endpoint.messages_key) if endpoint.messages_key else None
        extra = _content_attributes(kwargs, endpoint.messages_key) if active.capture_content else None
        call = recorder.start(provider, endpoint.operation, model, stream, server, messages, extra)
        base = CallRecord(
            provider=provider,
            operation=endpoint.operation,
            request_model=model,
            server_address=server[0] if server else None,
            server_port=server[1] if server else None,
            stream=stream,
            service_tier=_request_text(kwargs, "service_tier"),  # the response's, when it says
            speed=_request_text(kwargs, "speed"),
            usage_requested=endpoint.usage_option(kwargs) if stream and endpoint.usage_option else None,
        )
        return _Pending(call, base)
    except Exception as exc:
        internal_error("call start", exc)
        return None


def _finish(pending: _Pending, record: CallRecord, ended: tuple[int, float] | None = None) -> None:
    """Record the call; `ended` = (end time in ns, duration in s) when it ended before now."""
    ticket, pending.ticket = pending.ticket, None
    if ticket is not None:
        with guarded("budget settle"):
            ticket.settle(record, pending.call.span)
    try:
        if ended is None:
            pending.call.finish(record)
        else:
            pending.call.finish(record, end_time=ended[0], duration=ended[1])
    except Exception as exc:
        internal_error("call finish", exc)
    finally:
        pending.call.detach()  # idempotent; never leave our span current after a bug


def _finish_error(pending: _Pending, exc: BaseException) -> None:
    _finish(pending, pending.base.evolve(error_type=_error_type(exc)))


def _finish_response(pending: _Pending, endpoint: Endpoint, result: Any) -> None:
    try:
        record = endpoint.from_response(result, pending.base)
    except Exception as exc:
        internal_error(f"{endpoint.provider} usage extraction", exc)
        record = pending.base
    _finish(pending, record)


def _unwrap_raw(result: Any) -> Any:
    """`with_raw_response` returns the HTTP response; parse it (the SDK caches the parse).

    Checks go through the class first: a missing attribute on a pydantic model raises
    inside pydantic's ``__getattr__``, which costs microseconds on every call.
    """
    cls = type(result)
    if hasattr(cls, "model_fields"):  # a parsed SDK model already
        return result
    # only `with_raw_response` (LegacyAPIResponse: body already read); never the responses of
    # `with_streaming_response`, whose body the user has not read yet
    if cls.__name__ == "LegacyAPIResponse" and callable(getattr(result, "parse", None)):
        return result.parse()
    return result


def _is_stream(result: Any) -> bool:
    return hasattr(type(result), "__stream__")


# --- streams ----------------------------------------------------------------------------


class _StreamFinisher:
    """Finalises a stream's call exactly once: at its end, on error, on close, or abandoned.

    `finish()` runs on the user's stack only (end, error, close); a finaliser (the stream
    garbage-collected, iterated or not) calls `abandoned()`, which only queues the finish
    for the next safe point (`otel_tokens.deferred`) with the time it ended.
    """

    __slots__ = ("_lock", "done", "endpoint", "observer", "pending", "started")

    def __init__(self, pending: _Pending, endpoint: Endpoint, observer: StreamObserver) -> None:
        self.pending = pending
        self.endpoint = endpoint
        self.observer = observer
        self.started = False
        self.done = False
        self._lock = threading.Lock()

    def seen(self, item: Any) -> None:
        self.started = True
        try:
            self.observer.observe(item)
        except Exception as err:
            internal_error("stream observe", err)

    def failed(self, exc: BaseException) -> None:
        """The stream raised into the user's loop: cut by the server, or a task cancelled."""
        if isinstance(exc, asyncio.CancelledError):
            self.finish(complete=False, cancelled=True)
        else:
            self.finish(complete=False, exc=exc)

    def abandoned(self) -> None:
        """From a finaliser: never record here, queue it (safe on any stack)."""
        if not self.done:
            ended = (time.time_ns(), self.pending.call.elapsed())
            deferred.defer(functools.partial(self.finish, complete=False, cancelled=True, ended=ended))

    def finish(
        self,
        *,
        complete: bool,
        exc: BaseException | None = None,
        cancelled: bool = False,
        ended: tuple[int, float] | None = None,
    ) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True
        try:
            record = self.observer.record(self.pending.base, complete=complete)
            if exc is not None:
                record = record.evolve(error_type=_error_type(exc), partial=self.started)
            elif cancelled:
                record = record.evolve(cancelled=True)
        except Exception as err:
            internal_error(f"{self.endpoint.provider} stream usage", err)
            record = self.pending.base
        _finish(self.pending, record, ended)


def _observe_sync(inner: Iterator[Any], fin: _StreamFinisher) -> Iterator[Any]:
    try:
        for item in inner:
            fin.seen(item)
            yield item
    except GeneratorExit:  # closed by the garbage collector (the user's close() finished already)
        fin.abandoned()
        raise
    except BaseException as exc:
        fin.failed(exc)
        raise
    fin.finish(complete=True)


async def _observe_async(inner: AsyncIterator[Any], fin: _StreamFinisher) -> AsyncIterator[Any]:
    try:
        async for item in inner:
            fin.seen(item)
            yield item
    except GeneratorExit:  # closed by the garbage collector (the user's close() finished already)
        fin.abandoned()
        raise
    except BaseException as exc:
        fin.failed(exc)
        raise
    fin.finish(complete=True)


class _Observed:
    """What the user iterates when the SDK hands out a plain iterator: an object of ours, not a
    generator, so the user's ``close()`` (on their stack) finishes the call at once while a
    garbage-collected one only queues its finish. ``start`` begins the call at the first
    item (a generator's request is sent then, so one never iterated records nothing)."""

    __slots__ = ("_fin", "_inner", "_start")

    def __init__(
        self,
        inner: Any,
        fin: _StreamFinisher | None,
        start: Callable[[], _StreamFinisher | None] | None = None,
    ) -> None:
        self._inner = inner
        self._fin = fin
        self._start = start

    def _finisher(self) -> _StreamFinisher | None:
        if self._start is not None:
            start, self._start = self._start, None
            self._fin = start()
        return self._fin

    def _closed(self) -> None:
        self._start = None
        if self._fin is not None:
            self._fin.finish(complete=False, cancelled=True)

    def __del__(self) -> None:
        if self._fin is not None:
            self._fin.abandoned()


class _ObservedSync(_Observed):
    __slots__ = ()

    def __iter__(self) -> _ObservedSync:
        return self

    def __next__(self) -> Any:
        fin = self._finisher()
        try:
            item = next(self._inner)
        except StopIteration:
            if fin is not None:
                fin.finish(complete=True)
            raise
        except BaseException as exc:
            if fin is not None:
                fin.failed(exc)
            raise
        if fin is not None:
            fin.seen(item)
        return item

    def close(self) -> None:
        self._closed()
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class _ObservedAsync(_Observed):
    __slots__ = ()

    def __aiter__(self) -> _ObservedAsync:
        return self

    async def __anext__(self) -> Any:
        fin = self._finisher()
        try:
            item = await self._inner.__anext__()
        except StopAsyncIteration:
            if fin is not None:
                fin.finish(complete=True)
            raise
        except BaseException as exc:
            if fin is not None:
                fin.failed(exc)
            raise
        if fin is not None:
            fin.seen(item)
        return item

    async def aclose(self) -> None:
        self._closed()
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()


def _lazy_sync(inner: Iterator[Any], endpoint: Endpoint, resource: Any, kwargs: Mapping[str, Any]) -> Any:
    """A sync generator's request is sent at its first chunk: the call starts there, so a
    stream that is never iterated records nothing (and leaves no span open)."""

    def start() -> _StreamFinisher | None:
        pending = _begin(endpoint, resource, kwargs)
        if pending is None:
            return None
        try:
            _admit(pending, kwargs)  # a hard budget refuses the stream before its request is sent
        except BaseException:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
            raise
        pending.call.detach()
        assert endpoint.stream_observer is not None
        deferred.drain_at_exit()
        return _StreamFinisher(pending, endpoint, endpoint.stream_observer())

    return _ObservedSync(inner, None, start)


def _abandoned(stream: Any) -> None:
    fin = stream.__dict__.get("_otel_tokens_fin")
    if fin is not None:
        fin.abandoned()


_closing_classes: dict[type, type] = {}


def _closing_class(cls: type) -> type:
    """A subclass of the SDK's stream class whose `close()` also finalises our call."""
    sub = _closing_classes.get(cls)
    if sub is not None:
        return sub
    original_close = cls.close  # type: ignore[attr-defined]
    original_del = getattr(cls, "__del__", None)

    def __del__(self: Any) -> None:  # a stream never iterated, or abandoned: queue its finish
        _abandoned(self)
        if original_del is not None:
            original_del(self)

    if inspect.iscoroutinefunction(original_close):

        async def aclose(self: Any) -> None:
            fin = self.__dict__.get("_otel_tokens_fin")
            if fin is not None:
                fin.finish(complete=False, cancelled=True)
            await original_close(self)

        body: dict[str, Any] = {"close": aclose}
    else:

        def close(self: Any) -> None:
            fin = self.__dict__.get("_otel_tokens_fin")
            if fin is not None:
                fin.finish(complete=False, cancelled=True)
            original_close(self)

        body = {"close": close}
    sub = type(cls.__name__, (cls,), {**body, "__del__": __del__, "__module__": cls.__module__})
    _closing_classes[cls] = sub
    return sub


def _instrument_stream(stream: Any, pending: _Pending, endpoint: Endpoint) -> None:
    assert endpoint.stream_observer is not None
    fin = _StreamFinisher(pending, endpoint, endpoint.stream_observer())
    inner = stream._iterator
    if hasattr(inner, "__anext__"):
        stream._iterator = _observe_async(inner, fin)
    else:
        stream._iterator = _observe_sync(inner, fin)
    stream.__dict__["_otel_tokens_fin"] = fin
    stream.__class__ = _closing_class(type(stream))
    deferred.drain_at_exit()


_iterable_classes: dict[type, type] = {}


def _iterable_class(cls: type) -> type:
    """A subclass of an SDK's iterable stream class (no private iterator to replace) whose
    iteration is observed and whose `close()` finalises our call."""
    sub = _iterable_classes.get(cls)
    if sub is not None:
        return sub
    original_iter = cls.__iter__  # type: ignore[attr-defined]
    original_close = getattr(cls, "close", None)

    def __iter__(self: Any) -> Iterator[Any]:
        fin = self.__dict__.get("_otel_tokens_fin")
        inner = original_iter(self)
        return inner if fin is None else _observe_sync(inner, fin)

    original_del = getattr(cls, "__del__", None)

    def __del__(self: Any) -> None:  # never iterated, or abandoned: queue its finish
        _abandoned(self)
        if original_del is not None:
            original_del(self)

    namespace: dict[str, Any] = {"__iter__": __iter__, "__del__": __del__, "__module__": cls.__module__}
    if original_close is not None:

        def close(self: Any) -> None:
            fin = self.__dict__.get("_otel_tokens_fin")
            if fin is not None:
                fin.finish(complete=False, cancelled=True)
            original_close(self)

        namespace["close"] = close
    sub = type(cls.__name__, (cls,), namespace)
    _iterable_classes[cls] = sub
    return sub


def _next_class(cls: type) -> type:
    """A subclass of a stream class that is its own iterator (``__next__``/``__anext__``, e.g.
    litellm's CustomStreamWrapper): each item is observed, its end, error, ``close()`` /
    ``aclose()`` or collection as garbage finalises our call."""
    sub = _iterable_classes.get(cls)
    if sub is not None:
        return sub
    namespace: dict[str, Any] = {"__module__": cls.__module__}
    original_next = getattr(cls, "__next__", None)
    original_anext = getattr(cls, "__anext__", None)
    original_del = getattr(cls, "__del__", None)
    if original_next is not None:

        def __next__(self: Any) -> Any:
            fin = self.__dict__.get("_otel_tokens_fin")
            try:
                item = original_next(self)
            except StopIteration:
                if fin is not None:
                    fin.finish(complete=True)
                raise
            except BaseException as exc:
                if fin is not None:
                    fin.failed(exc)
                raise
            if fin is not None:
                fin.seen(item)
            return item

        namespace["__next__"] = __next__
    if original_anext is not None:

        async def __anext__(self: Any) -> Any:
            fin = self.__dict__.get("_otel_tokens_fin")
            try:
                item = await original_anext(self)
            except StopAsyncIteration:
                if fin is not None:
                    fin.finish(complete=True)
                raise
            except BaseException as exc:
                if fin is not None:
                    fin.failed(exc)
                raise
            if fin is not None:
                fin.seen(item)
            return item

        namespace["__anext__"] = __anext__
    for name in ("close", "aclose"):
        original = getattr(cls, name, None)
        if original is None:
            continue
        if inspect.iscoroutinefunction(original):

            async def aclose(self: Any, _original: Any = original) -> Any:
                _closed_by(self)
                return await _original(self)

            namespace[name] = aclose
        else:

            def close(self: Any, _original: Any = original) -> Any:
                _closed_by(self)
                return _original(self)

            namespace[name] = close

    def __del__(self: Any) -> None:  # never iterated to the end, or abandoned: queue its finish
        _abandoned(self)
        if original_del is not None:
            original_del(self)

    namespace["__del__"] = __del__
    sub = type(cls.__name__, (cls,), namespace)
    _iterable_classes[cls] = sub
    return sub


def _closed_by(stream: Any) -> None:
    """``close()`` on a stream that iterates itself: cancelled by the user, unless the
    observer says the stream had already ended (litellm closes its own stream at its end)."""
    fin = stream.__dict__.get("_otel_tokens_fin")
    if fin is None:
        return
    ended = getattr(fin.observer, "stream_ended", None)
    if ended is not None and ended():
        fin.finish(complete=True)
    else:
        fin.finish(complete=False, cancelled=True)


def _instrument_iterable(stream: Any, fin: _StreamFinisher) -> None:
    """Observe an SDK stream object in place; an observer with ``attach(stream)`` is given it
    (litellm keeps usage in the stream that it does not yield)."""
    attach = getattr(fin.observer, "attach", None)
    if attach is not None:
        attach(stream)
    stream.__dict__["_otel_tokens_fin"] = fin
    cls = type(stream)
    own_iterator = hasattr(cls, "__next__") or hasattr(cls, "__anext__")
    stream.__class__ = _next_class(cls) if own_iterator else _iterable_class(cls)


# --- wrappers ---------------------------------------------------------------------------


def _after_return(pending: _Pending, endpoint: Endpoint, result: Any) -> Any:
    """Finish the call or start observing its stream; returns what the user gets."""
    try:
        if endpoint.iterates and endpoint.stream_observer is not None:
            pending.call.detach()
            fin = _StreamFinisher(pending, endpoint, endpoint.stream_observer())
            deferred.drain_at_exit()
            if hasattr(result, "__anext__"):
                return _ObservedAsync(result, fin)
            return _ObservedSync(result, fin)
        inside = endpoint.stream_in(result) if endpoint.stream_in is not None else None
        if inside is not None and endpoint.stream_observer is not None:
            pending.call.detach()
            _instrument_iterable(inside, _StreamFinisher(pending, endpoint, endpoint.stream_observer()))
            deferred.drain_at_exit()
            return result
        # a raw response is parsed (the SDK caches the parse, so the user gets the same object)
        parsed = _unwrap_raw(result)
        if endpoint.stream_observer is not None and _is_stream(parsed):
            pending.call.detach()
            _instrument_stream(parsed, pending, endpoint)
        else:
            _finish_response(pending, endpoint, parsed)
    except Exception as exc:
        internal_error("call return", exc)
        pending.call.detach()
    return result


def wrap(
    original: Callable[..., Any], endpoint: Endpoint, *, is_async: bool | None = None
) -> Callable[..., Any]:
    """Wrap an SDK method (sync or async) with the call lifecycle."""
    if is_async is None:
        is_async = inspect.iscoroutinefunction(original)
    if is_async:

        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            pending = _begin(endpoint, self, kwargs)
            if pending is None:
                return await original(self, *args, **kwargs)
            _admit(pending, kwargs)
            token = _enter(pending)
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                _exit(pending, endpoint, token, exc=exc)
                raise
            return _exit(pending, endpoint, token, result=result)

        async_wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
        return async_wrapper

    if endpoint.iterates:

        @functools.wraps(original)
        def generator_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _lazy_sync(original(self, *args, **kwargs), endpoint, self, kwargs)

        generator_wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
        return generator_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        pending = _begin(endpoint, self, kwargs)
        if pending is None:
            return original(self, *args, **kwargs)
        _admit(pending, kwargs)
        token = _enter(pending)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _exit(pending, endpoint, token, exc=exc)
            raise
        return _exit(pending, endpoint, token, result=result)

    wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
    return wrapper


Select = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], tuple[Endpoint, Mapping[str, Any]] | None]


def wrap_dispatch(original: Callable[..., Any], select: Select) -> Callable[..., Any]:
    """Wrap one request method shared by a whole SDK family (botocore's ``_make_api_call``).

    ``select(self, args, kwargs)`` names the endpoint of this request and its keyword-style
    request (``model``, ``stream``, messages), or None for requests that are not LLM calls.
    """

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        chosen = None
        if active.recorder is not None:
            try:
                chosen = select(self, args, kwargs)
            except Exception as exc:
                internal_error("select endpoint", exc)
        if chosen is None:
            return original(self, *args, **kwargs)
        endpoint, request = chosen
        pending = _begin(endpoint, self, request)
        if pending is None:
            return original(self, *args, **kwargs)
        _admit(pending, request)
        token = _enter(pending)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _exit(pending, endpoint, token, exc=exc)
            raise
        return _exit(pending, endpoint, token, result=result)

    wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
    return wrapper


FunctionSelect = Callable[[tuple[Any, ...], Mapping[str, Any]], tuple[Endpoint, Mapping[str, Any]] | None]


def wrap_function(
    original: Callable[..., Any], select: FunctionSelect, *, is_async: bool
) -> Callable[..., Any]:
    """Wrap a gateway SDK's module-level entry point (``litellm.completion``).

    ``select(args, kwargs)`` gives the endpoint and the keyword-style request, which also
    stands in for the resource (``Endpoint.resolve`` reads the provider from it). While the
    call runs, the SDKs it drives underneath record nothing (one call, one span).
    """
    if is_async:

        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            pending, endpoint, request = _select_function(select, args, kwargs)
            if pending is None or endpoint is None:
                return await original(*args, **kwargs)
            _admit(pending, request)
            token = _enter(pending)
            outer = _outer.set(True)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                _outer.reset(outer)
                _exit(pending, endpoint, token, exc=exc)
                raise
            _outer.reset(outer)
            return _exit(pending, endpoint, token, result=result)

        async_wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        pending, endpoint, request = _select_function(select, args, kwargs)
        if pending is None or endpoint is None:
            return original(*args, **kwargs)
        _admit(pending, request)
        token = _enter(pending)
        outer = _outer.set(True)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            _outer.reset(outer)
            _exit(pending, endpoint, token, exc=exc)
            raise
        _outer.reset(outer)
        return _exit(pending, endpoint, token, result=result)

    wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _select_function(
    select: FunctionSelect, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[_Pending | None, Endpoint | None, Mapping[str, Any]]:
    if active.recorder is None or _outer.get():
        return None, None, kwargs
    try:
        chosen = select(args, kwargs)
    except Exception as exc:
        internal_error("select endpoint", exc)
        return None, None, kwargs
    if chosen is None:
        return None, None, kwargs
    endpoint, request = chosen
    return _begin(endpoint, request, request), endpoint, request


def _enter(pending: _Pending) -> contextvars.Token[CallState | None]:
    """Make the call's state visible to hooks running inside the SDK call (retries)."""
    state, token = enter_call()
    pending.call.state = state
    return token


def _exit(
    pending: _Pending,
    endpoint: Endpoint,
    token: contextvars.Token[CallState | None],
    *,
    result: Any = None,
    exc: BaseException | None = None,
) -> Any:
    exit_call(token)
    if exc is not None:
        _finish_error(pending, exc)
        return None
    return _after_return(pending, endpoint, result)


def wrap_stream_manager(original: Callable[..., Any], endpoint: Endpoint) -> Callable[..., Any]:
    """Wrap a `.stream()` helper that returns a manager holding a deferred request.

    The manager calls its request function on ``__enter__``; we wrap that function so the
    call starts when the request is sent and the raw stream is observed like any other.
    """

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        if active.recorder is None:
            return manager
        try:
            attr = next(a for a in vars(manager) if a.endswith("__api_request"))
            request = getattr(manager, attr)
            setattr(manager, attr, _deferred(request, endpoint, self, kwargs))
        except Exception as exc:
            internal_error("stream manager", exc)
        return manager

    wrapper.__otel_tokens_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _deferred(request: Any, endpoint: Endpoint, resource: Any, kwargs: Mapping[str, Any]) -> Any:
    """The sync manager holds a request function; the async one holds an awaitable."""
    if inspect.isawaitable(request):
        wrapped = wrap(lambda _resource, **_kwargs: request, endpoint, is_async=True)
        return _closing(wrapped(resource, **kwargs), request)
    is_async = inspect.iscoroutinefunction(request) or _is_async_partial(request)
    wrapped = wrap(lambda _resource, **_kwargs: request(), endpoint, is_async=is_async)
    return functools.partial(wrapped, resource, **kwargs)


async def _closing(call: Any, request: Any) -> Any:
    """Await `call`; a request coroutine it never awaited (a refused call) is closed unsent."""
    try:
        return await call
    finally:
        if inspect.iscoroutine(request):
            request.close()


def _is_async_partial(fn: Any) -> bool:
    return isinstance(fn, functools.partial) and inspect.iscoroutinefunction(fn.func)
