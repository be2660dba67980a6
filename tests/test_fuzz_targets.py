"""The fuzz targets of ``fuzz/targets.py`` keep working: seeds and random mutations, fast.

``fuzz/run.py`` runs the same targets coverage-guided (atheris) for minutes; this file only
makes sure every target still accepts its seeds and a few hundred mutated inputs without an
unexpected exception, so a parser change that breaks a target shows up in ``make test``.
"""

from __future__ import annotations

import random

import pytest
from fuzz import run as fuzz_run
from fuzz.targets import TARGETS, chunks, mutate

RANDOM_INPUTS = 300


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_accepts_its_seeds(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    assert seeds, f"{name} has no seeds"
    for seed in seeds:
        target.run(seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_survives_random_mutations(name: str) -> None:
    target = TARGETS[name]
    pool = target.seeds()
    rng = random.Random(f"uacsta-{name}")
    for i in range(RANDOM_INPUTS):
        if i % 10 == 0:
            data = rng.randbytes(rng.randint(0, 300))  # raw garbage now and then
        else:
            data = mutate(rng, rng.choice(pool), pool)
        try:
            target.run(data)
        except Exception as exc:  # pragma: no cover - the message names the reproducer
            raise AssertionError(f"{name} failed on {data[:200]!r}...") from exc


def test_chunks_cover_the_stream_exactly() -> None:
    data = bytes(range(256)) * 3
    for control in range(256):
        stream = bytes([control]) + data
        pieces = list(chunks(stream))
        assert b"".join(pieces) == data
        assert all(pieces)
    assert list(chunks(b"")) == []
    assert list(chunks(b"\x05")) == []


def test_runner_random_engine_reports_no_crash(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz_run.main(["--seconds", "0", "--engine", "random", "--target", "annexj"]) == 0
    out = capsys.readouterr().out
    assert "annexj" in out and "0 crash(es)" in out


def test_runner_replays_inputs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "sample"
    sample.write_bytes(b"INVITE sip:x SIP/2.0\r\n\r\n")
    assert fuzz_run.main(["--target", "sip_message", "--replay", str(sample)]) == 0
    assert "ok" in capsys.readouterr().out
