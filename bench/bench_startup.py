"""Interpreter start-up time added by the ``otel_tokens_autostart.pth`` hook.

1. In process, precise: what `site` does for our file at every start-up when
   OTEL_TOKENS_ENABLED is unset (`site.addpackage`: open, read, exec the one line), and
   the line alone. Medians of 7 blocks, µs.
2. End to end, `python -c pass` in throwaway venvs built from the same base interpreter
   (runs interleaved, medians of wall time and of the child's CPU time): without any
   ``.pth`` (twice: their difference is the noise floor), with our hook, with another
   ``.pth`` of the same shape, and with both. The first ``.pth`` with an import line
   costs an interpreter more than a warm `site.addpackage` (one-time set-up), so the
   marginal cost of ours is shown both in a bare venv and next to another ``.pth``.
3. For reference, the project venv with OTEL_TOKENS_ENABLED unset vs ``true`` (full
   instrumentation; the local store in a temporary directory, no OTLP endpoint).

Run:  .venv/bin/python bench/bench_startup.py [--quick]
Writes bench/results/startup.json (not with --quick: its figures are rough).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import site
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PTH = "otel_tokens_autostart.pth"
RESULTS = Path(__file__).parent / "results"
ENV_VAR = "OTEL_TOKENS_ENABLED"
# most venvs already hold a .pth with an import line (setuptools' distutils-precedence.pth,
# editable installs); a neutral one of the same shape, so the first-.pth cost is paid by both
OTHER_PTH = {"other.pth": 'import os; os.environ.get("BENCH_UNSET_VARIABLE") and __import__("nothing")\n'}


def installed_pth() -> Path:
    """The hook as installed in this interpreter's site-packages (else the source copy)."""
    path = Path(sysconfig.get_paths()["purelib"]) / PTH
    return path if path.exists() else ROOT / "src" / PTH


def in_process(pth: Path, number: int) -> dict[str, float]:
    os.environ.pop(ENV_VAR, None)
    line = next(x for x in pth.read_text().splitlines() if x.startswith("import"))
    code = compile(line, str(pth), "exec")

    def median_us(fn: object) -> float:
        runs = timeit.repeat(fn, number=number, repeat=7, timer=time.process_time)  # type: ignore[arg-type]
        return statistics.median(runs) / number * 1e6

    out = {
        "site_addpackage_us": median_us(lambda: site.addpackage(str(pth.parent), pth.name, set())),
        "line_exec_us": median_us(lambda: exec(code, {})),
    }
    # the same with an empty .pth of our own, to show what any .pth file costs `site`
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "empty.pth").write_text("")
        out["empty_pth_addpackage_us"] = median_us(lambda: site.addpackage(tmp, "empty.pth", set()))
    return out


def make_venv(where: Path, pth_files: dict[str, str]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    purelib = subprocess.run(
        [str(where / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for name, text in pth_files.items():
        (Path(purelib) / name).write_text(text)
    return where / "bin" / "python"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and child CPU (user + sys) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def interleaved(
    variants: dict[str, tuple[list[str], dict[str, str]]], runs: int
) -> dict[str, dict[str, float]]:
    names = list(variants)
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm the page cache
        run_once(*variants[name])
    for i in range(runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            wall, cpu = run_once(*variants[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {
        n: {"wall_ms": statistics.median(walls[n]) * 1e3, "cpu_ms": statistics.median(cpus[n]) * 1e3}
        for n in names
    }


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON"))}
    env["HOME"] = str(tmp / "home")
    env["XDG_DATA_HOME"] = str(tmp / "data")
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    return env


def _revision() -> str:
    """The commit measured, with ``+dirty`` when src/ has uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "src"], capture_output=True, text=True
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 20 s on an idle machine)")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON results")
    args = parser.parse_args(argv)
    runs = 20 if args.quick else 150
    ref_runs = 3 if args.quick else 10  # an enabled start-up takes ~0.25 s
    pth = installed_pth()
    load = os.getloadavg()
    print(
        f"hook: {pth}\nload average {load[0]:.1f}; {runs} start-ups per venv, {ref_runs} per reference case"
    )

    hook = in_process(pth, 2_000 if args.quick else 20_000)
    print("\nin process, OTEL_TOKENS_ENABLED unset (CPU µs, median of 7 blocks):")
    print(f"  site.addpackage(our .pth)     {hook['site_addpackage_us']:8.1f}   <- added to every start-up")
    print(f"  site.addpackage(empty .pth)   {hook['empty_pth_addpackage_us']:8.1f}   (file handling alone)")
    print(f"  the .pth line alone           {hook['line_exec_us']:8.2f}")

    with tempfile.TemporaryDirectory(prefix="otel-tokens-startup-") as tmp_name:
        tmp = Path(tmp_name)
        env = base_env(tmp)
        hook_file = {PTH: pth.read_text()}
        venvs = {
            "no_pth": make_venv(tmp / "a", {}),
            "no_pth_2": make_venv(tmp / "b", {}),
            "hook": make_venv(tmp / "c", hook_file),
            "other_pth": make_venv(tmp / "d", OTHER_PTH),
            "other_pth+hook": make_venv(tmp / "e", {**OTHER_PTH, **hook_file}),
        }
        e2e = interleaved({name: ([str(python), "-c", "pass"], env) for name, python in venvs.items()}, runs)
        project = str(ROOT / ".venv" / "bin" / "python")
        enabled = {
            **env,
            ENV_VAR: "true",
            "OTEL_TOKENS_STORE": str(tmp / "store.db"),
            "OTEL_SERVICE_NAME": "bench",
        }
        ref = interleaved(
            {"unset": ([project, "-c", "pass"], env), "enabled": ([project, "-c", "pass"], enabled)}, ref_runs
        )

    def diff_us(a: str, b: str) -> dict[str, float]:
        return {f"{k[:-3]}_us": (e2e[a][k] - e2e[b][k]) * 1e3 for k in ("wall_ms", "cpu_ms")}

    added, floor = diff_us("hook", "no_pth"), diff_us("no_pth_2", "no_pth")
    added_other = diff_us("other_pth+hook", "other_pth")
    print("\n`python -c pass`, throwaway venvs (median ms):")
    for name, r in e2e.items():
        print(f"  {name:<16} wall {r['wall_ms']:7.2f}   cpu {r['cpu_ms']:7.2f}")
    for label, d in (
        ("hook adds, venv without other .pth", added),
        ("hook adds, venv with another .pth", added_other),
        ("noise floor (no_pth_2 - no_pth)", floor),
    ):
        print(f"  {label:<36} wall {d['wall_us']:+7.0f} µs  cpu {d['cpu_us']:+7.0f} µs")
    print("\nproject venv, `python -c pass` (median ms):")
    for name, r in ref.items():
        print(f"  OTEL_TOKENS_ENABLED {name:<8} wall {r['wall_ms']:7.1f}   cpu {r['cpu_ms']:7.1f}")
    full = ref["enabled"]["wall_ms"] - ref["unset"]["wall_ms"]
    print(f"  full instrumentation at start-up adds {full:.0f} ms wall")

    result = {
        "mode": "quick" if args.quick else "full",
        "revision": _revision(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average_start": load},
        "hook_file": str(pth.relative_to(ROOT) if pth.is_relative_to(ROOT) else pth),
        "in_process_us": hook,
        "e2e_runs": runs,
        "e2e_median_ms": e2e,
        "e2e_added_us": added,
        "e2e_added_with_other_pth_us": added_other,
        "e2e_noise_floor_us": floor,
        "reference_runs": ref_runs,
        "reference_median_ms": ref,
        "enabled_adds_ms_wall": full,
    }
    if not (args.no_write or args.quick):
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / "startup.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
