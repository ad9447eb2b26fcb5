"""OTLP/HTTP log payloads (protobuf or JSON, optionally gzip) as flat log records.

Only logs matter here: each coding agent's per-call record is a log record. Metrics and
traces are accepted by the receiver and dropped. Attribute values are unwrapped to Python
values (``intValue`` strings of the JSON mapping become ints).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Value = str | int | float | bool | list[Any] | dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One OTLP log record with its resource's attributes."""

    resource: Mapping[str, Value]
    attributes: Mapping[str, Value]
    body: Value
    time_ns: int
    scope: str = ""


def decompress(body: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "").strip().lower()
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    return body


def _any_value(v: Mapping[str, Any] | None) -> Value:
    if not v:
        return None
    if "stringValue" in v:
        return str(v["stringValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return _attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None


def _attributes(kvs: Any) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for kv in kvs or ():
        if isinstance(kv, Mapping) and "key" in kv:
            out[str(kv["key"])] = _any_value(kv.get("value"))
    return out


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def log_records(message: Mapping[str, Any]) -> Iterator[LogRecord]:
    """The records of an ``ExportLogsServiceRequest`` in its JSON mapping."""
    for rl in message.get("resourceLogs") or ():
        resource = _attributes((rl.get("resource") or {}).get("attributes"))
        for sl in rl.get("scopeLogs") or ():
            scope = str((sl.get("scope") or {}).get("name") or "")
            for lr in sl.get("logRecords") or ():
                yield LogRecord(
                    resource=resource,
                    attributes=_attributes(lr.get("attributes")),
                    body=_any_value(lr.get("body")),
                    time_ns=_int(lr.get("timeUnixNano")) or _int(lr.get("observedTimeUnixNano")),
                    scope=scope,
                )


def decode_logs(body: bytes, content_type: str | None, encoding: str | None = None) -> list[LogRecord]:
    """Decode an OTLP/HTTP logs request body; raises ValueError when it is not one."""
    raw = decompress(body, encoding)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            message = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not OTLP JSON: {exc}") from None
        if not isinstance(message, dict):
            raise ValueError("not OTLP JSON: top level is not an object")
        return list(log_records(message))
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise ValueError(f"not OTLP protobuf: {exc}") from None
    return list(log_records(MessageToDict(request)))
