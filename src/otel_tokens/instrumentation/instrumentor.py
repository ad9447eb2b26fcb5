"""Instrumentors: patch the supported SDKs' methods, idempotently.

`OpenAIInstrumentor`, `AnthropicInstrumentor`, `GoogleGenAIInstrumentor` and
`BedrockInstrumentor` and `LiteLLMInstrumentor` are OpenTelemetry `BaseInstrumentor`s, registered
under the `opentelemetry_instrumentor` entry points `otel_tokens_openai`, `otel_tokens_anthropic`,
`otel_tokens_google_genai`, `otel_tokens_bedrock` and `otel_tokens_litellm`, so
`opentelemetry-instrument` picks them up. `instrument()` / `uninstrument()` drive them all
programmatically. Instrumenting twice never patches twice.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Collection, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_tokens import settings
from otel_tokens.guard import internal_error
from otel_tokens.instrumentation import core
from otel_tokens.instrumentation.adapters import anthropic as anthropic_adapter
from otel_tokens.instrumentation.adapters import bedrock as bedrock_adapter
from otel_tokens.instrumentation.adapters import google_genai as google_genai_adapter
from otel_tokens.instrumentation.adapters import litellm as litellm_adapter
from otel_tokens.instrumentation.adapters import openai as openai_adapter
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.pricing.pricer import Pricer
from otel_tokens.telemetry.recorder import Recorder

logger = logging.getLogger("otel_tokens")

Target = tuple[str, str, str, Endpoint, str]
# (module, class, method, select): one request method shared by a whole SDK family
Dispatch = tuple[str, str, str, core.Select]
# (module, function, select, is_async): a gateway SDK's module-level entry point
Function = tuple[str, str, core.FunctionSelect, bool]
_ANTHROPIC_OTEL_ENV = "ANTHROPIC_OPEN_TELEMETRY"


def _resolved(targets: Collection[Target]) -> Iterator[tuple[type, str, Endpoint, str]]:
    """(class, method, endpoint, kind) for each target whose module and class exist."""
    for module_name, class_name, method, endpoint, kind in targets:
        try:
            yield getattr(importlib.import_module(module_name), class_name), method, endpoint, kind
        except (ImportError, AttributeError):
            continue


def _patch(targets: Collection[Target]) -> int:
    patched = 0
    for cls, method, endpoint, kind in _resolved(targets):
        current = cls.__dict__.get(method)
        if current is None or hasattr(current, "__otel_tokens_original__"):
            continue
        if kind == "manager":
            setattr(cls, method, core.wrap_stream_manager(current, endpoint))
        else:
            # SDK decorators hide `async def`; the Async* resource classes are the async ones
            setattr(cls, method, core.wrap(current, endpoint, is_async=cls.__name__.startswith("Async")))
        patched += 1
    return patched


def _unpatch(targets: Collection[Target]) -> None:
    for cls, method, _endpoint, _kind in _resolved(targets):
        original = getattr(cls.__dict__.get(method), "__otel_tokens_original__", None)
        if original is not None:
            setattr(cls, method, original)


def _patch_dispatch(dispatch: Collection[Dispatch]) -> None:
    for module_name, class_name, method, select in dispatch:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        current = cls.__dict__.get(method)
        if current is not None and not hasattr(current, "__otel_tokens_original__"):
            setattr(cls, method, core.wrap_dispatch(current, select))


def _unpatch_dispatch(dispatch: Collection[Dispatch]) -> None:
    for module_name, class_name, method, _select in dispatch:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        original = getattr(getattr(cls, "__dict__", {}).get(method), "__otel_tokens_original__", None)
        if original is not None:
            setattr(cls, method, original)


def _patch_functions(functions: Collection[Function]) -> None:
    for module_name, name, select, is_async in functions:
        module = sys.modules.get(module_name)
        if module is None:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        current = module.__dict__.get(name)
        if current is not None and not hasattr(current, "__otel_tokens_original__"):
            setattr(module, name, core.wrap_function(current, select, is_async=is_async))


def _unpatch_functions(functions: Collection[Function]) -> None:
    for module_name, name, _select, _is_async in functions:
        module = sys.modules.get(module_name)
        original = getattr(getattr(module, "__dict__", {}).get(name), "__otel_tokens_original__", None)
        if original is not None:
            setattr(module, name, original)


def _retry_hooks(name: str) -> tuple[Callable[[], None], Callable[[], None]] | None:
    try:
        retries = importlib.import_module("otel_tokens.instrumentation.retries")
        return getattr(retries, f"patch_{name}"), getattr(retries, f"unpatch_{name}")
    except (ImportError, AttributeError):
        return None


def _ensure_recorder(kwargs: dict[str, Any]) -> None:
    if core.active.recorder is None or kwargs.get("tracer_provider") or kwargs.get("meter_provider"):
        core.set_recorder(
            Recorder(kwargs.get("tracer_provider"), kwargs.get("meter_provider"), kwargs.get("pricer"))
        )


_on_import: dict[str, Callable[[], None]] = {}
_hooked: set[str] = set()
_preloaded = False


def _when_imported(package: str, apply: Callable[[], None]) -> None:
    """Run `apply` now if `package` is imported, else right after its import.

    Importing the SDKs ourselves would cost every process ~1.5 s at start-up, used or not.
    """
    _on_import[package] = apply
    if package in sys.modules:
        apply()
    elif package not in _hooked:
        import wrapt

        _hooked.add(package)
        wrapt.register_post_import_hook(lambda _module: _fire(package), package)


def _fire(package: str) -> None:
    apply = _on_import.get(package)
    if apply is not None:
        apply()


def _preload_prices() -> None:
    """Load the bundled price data off the call path (the first lookup costs ~0.25 s)."""
    global _preloaded
    if _preloaded or core.active.recorder is None or core.active.recorder.has_pricer:
        return
    import threading

    from otel_tokens.pricing.pricer import Pricer

    _preloaded = True
    threading.Thread(target=Pricer.preload, name="otel-tokens-prices", daemon=True).start()


class _SDKInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    sdk = ""
    requirement = ""
    targets: tuple[Target, ...] = ()
    dispatch: tuple[Dispatch, ...] = ()
    functions: tuple[Function, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.requirement,)

    def _instrument(self, **kwargs: Any) -> None:
        try:
            settings.check()
            _ensure_recorder(kwargs)
            from otel_tokens.attribution import propagation
            from otel_tokens.attribution import scopes as attribution

            if kwargs.get("tracer_provider") or kwargs.get("meter_provider"):
                attribution.configure(
                    tracer_provider=kwargs.get("tracer_provider"), meter_provider=kwargs.get("meter_provider")
                )
            propagation.install()
            from otel_tokens.attribution import frameworks

            frameworks.watch(kwargs.get("tracer_provider") or trace.get_tracer_provider())
            self._before_patch()
            _when_imported(self.sdk, self._apply)
        except Exception as exc:
            internal_error(f"instrument {self.sdk}", exc)

    def _apply(self) -> None:
        try:
            _patch(self.targets)
            _patch_dispatch(self.dispatch)
            _patch_functions(self.functions)
            hooks = _retry_hooks(self.sdk)
            if hooks is not None:
                hooks[0]()
            _preload_prices()
        except Exception as exc:
            internal_error(f"patch {self.sdk}", exc)

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_tokens.attribution import propagation
        from otel_tokens.attribution import scopes as attribution

        _on_import.pop(self.sdk, None)
        if self.sdk in sys.modules:
            _unpatch(self.targets)
            _unpatch_dispatch(self.dispatch)
            _unpatch_functions(self.functions)
            hooks = _retry_hooks(self.sdk)
            if hooks is not None:
                hooks[1]()
        propagation.uninstall()
        self._after_unpatch()
        if not any(i.is_instrumented_by_opentelemetry for i in _instrumentors() if i is not self):
            core.set_recorder(None)
            attribution.configure()

    def _before_patch(self) -> None:
        return None

    def _after_unpatch(self) -> None:
        return None


class OpenAIInstrumentor(_SDKInstrumentor):
    sdk = "openai"
    requirement = "openai >= 1.40"
    targets = openai_adapter.TARGETS


class AnthropicInstrumentor(_SDKInstrumentor):
    """Also switches off the anthropic SDK's own tracing (2.x emits an
    ``anthropic.messages.create`` span with ``gen_ai.usage.*`` as soon as a global tracer
    provider exists), so each call has exactly one usage-bearing span: ours. A user who
    sets ``ANTHROPIC_OPEN_TELEMETRY`` explicitly keeps their choice."""

    sdk = "anthropic"
    requirement = "anthropic >= 0.40"
    targets = anthropic_adapter.TARGETS
    _set_env = False

    def _before_patch(self) -> None:
        if _ANTHROPIC_OTEL_ENV not in os.environ:
            os.environ[_ANTHROPIC_OTEL_ENV] = "false"
            AnthropicInstrumentor._set_env = True
        elif os.environ[_ANTHROPIC_OTEL_ENV].lower() != "false":
            logger.info(
                "otel-tokens: %s=%s keeps the anthropic SDK's own spans; they also carry gen_ai.usage.*, "
                "so sum usage over otel-tokens spans (scope %r) only",
                _ANTHROPIC_OTEL_ENV,
                os.environ[_ANTHROPIC_OTEL_ENV],
                "otel_tokens",
            )

    def _after_unpatch(self) -> None:
        if AnthropicInstrumentor._set_env:
            os.environ.pop(_ANTHROPIC_OTEL_ENV, None)
            AnthropicInstrumentor._set_env = False


class GoogleGenAIInstrumentor(_SDKInstrumentor):
    sdk = "google.genai"
    requirement = "google-genai >= 1.0"
    targets = google_genai_adapter.TARGETS


class BedrockInstrumentor(_SDKInstrumentor):
    """boto3 ``bedrock-runtime`` (Converse, ConverseStream, InvokeModel for Anthropic models)."""

    sdk = "botocore"
    requirement = "botocore >= 1.34"
    dispatch = bedrock_adapter.DISPATCH


class LiteLLMInstrumentor(_SDKInstrumentor):
    """litellm's completion / acompletion / embedding / aembedding; the SDKs litellm drives
    underneath record nothing during its calls (one call, one usage-bearing span)."""

    sdk = "litellm"
    requirement = "litellm >= 1.60"
    functions = litellm_adapter.FUNCTIONS


def _instrumentors() -> tuple[_SDKInstrumentor, ...]:
    return (
        OpenAIInstrumentor(),
        AnthropicInstrumentor(),
        GoogleGenAIInstrumentor(),
        BedrockInstrumentor(),
        LiteLLMInstrumentor(),
    )


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    pricer: Pricer | None = None,
) -> None:
    """Instrument every supported SDK that is installed. Calling it again re-targets the
    providers without patching twice."""
    core.set_recorder(Recorder(tracer_provider, meter_provider, pricer))
    from otel_tokens.attribution import frameworks
    from otel_tokens.attribution import scopes as attribution

    # agent frameworks' invoke_agent / execute_tool spans become scopes (and get our rollups)
    frameworks.watch(tracer_provider or trace.get_tracer_provider())

    attribution.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    for inst in _instrumentors():
        if not inst.is_instrumented_by_opentelemetry:
            inst.instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                pricer=pricer,
                skip_dep_check=True,
            )


def uninstrument() -> None:
    for inst in _instrumentors():
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
    core.set_recorder(None)
