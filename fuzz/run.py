"""Run the fuzz targets of ``fuzz/targets.py`` with atheris (coverage-guided libFuzzer).

    python fuzz/run.py --seconds 60                 # every target, 60 s each
    python fuzz/run.py --seconds 300 --target csta_codec --jobs 2

Each target runs in its own process for ``--seconds`` (libFuzzer ``-max_total_time``), seeded
from the test fixtures (written to ``fuzz/corpus/<target>/`` at start; libFuzzer adds what it
finds there, so later runs resume). A crash (an exception other than the parser's documented
one, or a broken invariant) is saved as ``fuzz/crashes/<target>-crash-<sha1>``; replay it with
``python fuzz/run.py --target NAME --replay FILE``. The exit code is non-zero when any target
crashed. Without atheris (``pip install atheris``) ``--engine random`` runs a plain mutation
fuzzer over the same seeds (not coverage-guided, but it needs nothing).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import random
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
WORK = HERE / ".work"


@dataclass
class Outcome:
    target: str
    executions: int
    seconds: float
    crashes: list[Path]
    detail: str = ""


# --- atheris worker (one process per target) ------------------------------------------------


def _worker(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["uacsta", "fuzz"]):
        from fuzz.targets import TARGETS

    atheris.Setup([sys.argv[0], *libfuzzer_args], TARGETS[name].run)
    atheris.Fuzz()


# --- parent: corpus, dictionaries, process management --------------------------------------


def _prepare(name: str) -> tuple[Path, Path, int]:
    from fuzz.targets import TARGETS

    target = TARGETS[name]
    corpus = CORPUS / name
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = target.seeds()
    for seed in seeds:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    WORK.mkdir(exist_ok=True)
    dictionary = WORK / f"{name}.dict"
    lines = ("".join(f"\\x{b:02x}" for b in token) for token in target.dictionary)
    dictionary.write_text("".join(f'"{line}"\n' for line in lines))
    max_len = min(140_000, max(4096, 2 * max((len(s) for s in seeds), default=0)))
    return corpus, dictionary, max_len


_STAT = re.compile(rb"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(rb"^#(\d+)\s", re.MULTILINE)
_DONE = re.compile(rb"Done (\d+) runs in (\d+) second")


def _run_atheris(name: str, seconds: int, verbose: bool) -> Outcome:
    corpus, dictionary, max_len = _prepare(name)
    CRASHES.mkdir(exist_ok=True)
    before = set(CRASHES.glob(f"{name}-*"))
    args = [
        str(corpus),
        f"-max_total_time={seconds}",
        f"-max_len={max_len}",
        f"-dict={dictionary}",
        f"-artifact_prefix={CRASHES}/{name}-",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-close_fd_mask=1",  # the targets print nothing; keep libFuzzer's stderr only
    ]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--", *args],
        capture_output=True,
        check=False,
        cwd=REPO,
        timeout=seconds + 120,
    )
    elapsed = time.monotonic() - started
    log = proc.stderr
    (WORK / f"{name}.log").write_bytes(log)
    if verbose:
        sys.stderr.write(log.decode("utf-8", "replace"))
    found = _STAT.findall(log) or _DONE.findall(log) or _PROGRESS.findall(log)
    last = found[-1] if found else b"0"
    executions = int(last[0] if isinstance(last, tuple) else last)
    crashes = sorted(set(CRASHES.glob(f"{name}-*")) - before)
    detail = ""
    if proc.returncode != 0:
        tail = log.decode("utf-8", "replace").strip().splitlines()[-25:]
        detail = "\n".join(tail)
        if not crashes:  # a failure that left no artifact still counts
            crashes = [WORK / f"{name}.log"]
    return Outcome(name, executions, elapsed, crashes, detail)


# --- fallback engine: seeded random mutations (no coverage feedback) -----------------------


def _run_random(name: str, seconds: int, seed: int) -> Outcome:
    from fuzz.targets import TARGETS, mutate

    target = TARGETS[name]
    pool = target.seeds() or [b""]
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + seconds
    executions = 0
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(pool), pool)
        executions += 1
        try:
            target.run(data)
        except Exception:
            CRASHES.mkdir(exist_ok=True)
            path = CRASHES / f"{name}-crash-{hashlib.sha1(data).hexdigest()}"
            path.write_bytes(data)
            return Outcome(
                name, executions, time.monotonic() - started, [path], traceback.format_exc()
            )
    return Outcome(name, executions, time.monotonic() - started, [])


# --- replay ----------------------------------------------------------------------------------


def _replay(name: str, files: list[str]) -> int:
    from fuzz.targets import TARGETS

    target = TARGETS[name]
    status = 0
    for file in files:
        try:
            target.run(Path(file).read_bytes())
        except Exception:
            traceback.print_exc()
            status = 1
        else:
            print(f"{file}: ok")
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0
    from fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="repeatable")
    parser.add_argument("--jobs", type=int, default=1, help="targets run in parallel")
    parser.add_argument("--engine", choices=("atheris", "random"), default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random engine")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run inputs once and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="show libFuzzer output")
    args = parser.parse_args(argv)
    names = args.target or list(TARGETS)
    if args.replay:
        if len(names) != 1:
            parser.error("--replay needs exactly one --target")
        return _replay(names[0], args.replay)

    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris is not installed: falling back to --engine random", file=sys.stderr)
            engine = "random"
        else:
            engine = "atheris"

    def one(name: str) -> Outcome:
        if engine == "atheris":
            return _run_atheris(name, args.seconds, args.verbose)
        return _run_random(name, args.seconds, args.seed)

    print(f"engine {engine}, {args.seconds} s per target, {len(names)} target(s)", flush=True)
    outcomes: list[Outcome] = []
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for outcome in pool.map(one, names):
            outcomes.append(outcome)
            rate = outcome.executions / outcome.seconds if outcome.seconds else 0.0
            print(
                f"{outcome.target:<12} {outcome.executions:>10} execs  {outcome.seconds:7.1f} s"
                f"  {rate:8.0f}/s  crashes: {len(outcome.crashes)}",
                flush=True,
            )
            for crash in outcome.crashes:
                print(f"    {os.path.relpath(crash, REPO)}")
            if outcome.crashes and outcome.detail:
                print("    " + outcome.detail.replace("\n", "\n    "))
    total = sum(o.executions for o in outcomes)
    crashed = sum(len(o.crashes) for o in outcomes)
    print(f"total        {total:>10} execs, {crashed} crash(es)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
