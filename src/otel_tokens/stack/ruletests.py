"""promtool unit tests for the rules, fed with noisy, realistic series.

Each scenario draws its series from a seeded RNG (so regeneration is a no-op): counters
whose per-minute increments vary randomly (piecewise constant over runs of 1-4 minutes,
written in promtool's expanding notation ``a+bxn``), daily cycles, bursts, counter resets
and processes that come and go. Every alert gets a case where it fires on the anomaly, a
check that it never fired on the normal noise before it (``ALERTS`` over the whole
window), and where the rule has a floor, a case proving the floor is what kept a small
relative spike silent. ``recording.yml`` checks the recording rules to exact values on
linear series.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence

from otel_tokens.stack.rules import Alert, Group, Recording

DAY = 1440  # minutes
Labels = dict[str, str]


# --- series --------------------------------------------------------------------------------
def _fmt(value: int, scale: int) -> str:
    if scale == 1:
        return str(value)
    whole, frac = divmod(value, scale)
    digits = len(str(scale)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".")


def notation(values: Sequence[int | None], scale: int = 1) -> str:
    """promtool values: runs of equal steps as ``a+bxn``, ``None`` as ``_``; integers / `scale`."""
    out: list[str] = []
    i = 0
    while i < len(values):
        v = values[i]
        if v is None:
            j = i
            while j + 1 < len(values) and values[j + 1] is None:
                j += 1
            out.append(f"_x{j - i + 1}" if j > i else "_")
            i = j + 1
            continue
        j = i
        nxt = values[i + 1] if i + 1 < len(values) else None
        step = nxt - v if nxt is not None else 0
        while j + 1 < len(values) and values[j + 1] is not None and values[j + 1] - values[j] == step:  # type: ignore[operator]
            j += 1
        sign = "+" if step >= 0 else "-"
        out.append(f"{_fmt(v, scale)}{sign}{_fmt(abs(step), scale)}x{j - i}" if j > i else _fmt(v, scale))
        i = j + 1
    return " ".join(out)


def increments(
    rng: random.Random,
    minutes: int,
    mean: Callable[[int], float],
    *,
    sigma: float = 0.3,
    integer: bool = False,
) -> list[float]:
    """Per-minute increments around `mean(minute)`, lognormal noise, constant over 1-4 minute runs."""
    out: list[float] = []
    while len(out) < minutes:
        m = len(out)
        run = rng.randint(1, 4)
        value = mean(m) * rng.lognormvariate(-sigma * sigma / 2, sigma)
        if integer:  # counts: keep the mean by rounding randomly
            value = math.floor(value) + (1 if rng.random() < value - math.floor(value) else 0)
        out += [value] * run
    return out[:minutes]


def cumulative(
    steps: Sequence[float], scale: int, *, resets: Sequence[int] = (), start: int = 0
) -> list[int | None]:
    """Counter samples, one per minute from minute 0 (``None`` before `start`); 0 again at each reset."""
    out: list[int | None] = [None] * start
    total = 0
    for minute, step in enumerate(steps[start:], start):
        if minute in resets:
            total = 0
        out.append(total)
        total += round(step * scale)
    return out


def diurnal(minute: int) -> float:
    """Daily cycle: about 0.55x at 03:00 UTC, 1.45x at 15:00 UTC."""
    return 1 + 0.45 * math.sin(2 * math.pi * (minute / DAY - 0.375))


def _series(name: str, labels: Labels, values: Sequence[int | None], scale: int = 1) -> dict[str, str]:
    inner = ", ".join(f"{k}={_quote(v)}" for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": notation(values, scale)}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _minutes(duration: str) -> int:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", duration)
    if not m or not duration:
        raise ValueError(f"unsupported duration {duration!r}; use e.g. 1h30m")
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def _t(minutes: int) -> str:
    return f"{minutes}m"


# --- expectations --------------------------------------------------------------------------
def _render(template: str, labels: Labels) -> str:
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    if "{{" in out:
        raise ValueError(f"the test generator renders only {{{{ $labels.X }}}}: {template!r}")
    return out


def expect(alert: Alert, labels: Labels) -> dict[str, object]:
    full = {**labels, **alert.all_labels()}
    return {
        "exp_labels": full,
        "exp_annotations": {k: _render(v, full) for k, v in alert.annotations().items()},
    }


def never_fired(alertname: str, until: int, matchers: str = "") -> dict[str, object]:
    """No `alertname` alert (optionally only those matching) was firing at any minute up to `until`."""
    extra = f", {matchers}" if matchers else ""
    return {
        "expr": f'count_over_time(ALERTS{{alertname="{alertname}", alertstate="firing"{extra}}}[{until}m])',
        "eval_time": _t(until),
        "exp_samples": [],
    }


def happened(condition: str, at: int, within: int = 30) -> dict[str, object]:
    """`condition` (a filter) held at some minute of the `within` minutes up to `at`."""
    return {
        "expr": f"count(max_over_time(({condition})[{within}m:1m]))",
        "eval_time": _t(at),
        "exp_samples": [{"labels": "{}", "value": 1}],
    }


def exact(expr: str, at: int, samples: Sequence[tuple[Labels, float]]) -> dict[str, object]:
    """`expr` rounded to 1e-6 equals `samples` at minute `at` (rounding keeps float noise out)."""
    return {
        "expr": f"round(({expr}) * 1e6) / 1e6",
        "eval_time": _t(at),
        "exp_samples": [
            {"labels": "{" + ", ".join(f"{k}={_quote(v)}" for k, v in lbl.items()) + "}", "value": value}
            for lbl, value in samples
        ],
    }


def _group(
    name: str, series: list[dict[str, str]], alerts: Sequence[object], exprs: Sequence[object]
) -> dict[str, object]:
    group: dict[str, object] = {"name": name, "interval": "1m", "input_series": series}
    if alerts:
        group["alert_rule_test"] = list(alerts)
    if exprs:
        group["promql_expr_test"] = list(exprs)
    return group


def _alert_test(alert: Alert, at: int, firing: Sequence[Labels]) -> dict[str, object]:
    return {
        "eval_time": _t(at),
        "alertname": alert.name,
        "exp_alerts": [expect(alert, lbl) for lbl in firing],
    }


def _alerts(rule_groups: Sequence[Group]) -> dict[str, Alert]:
    return {r.uid: r for g in rule_groups for r in g.rules if isinstance(r, Alert)}


def _recordings(rule_groups: Sequence[Group]) -> list[Recording]:
    return [r for g in rule_groups for r in g.rules if isinstance(r, Recording)]
