"""Shared helpers: the real command line in subprocesses, several at once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "vanilla_gan.py"

# A run small enough for CI yet long enough to have several frames.
TINY = ["--steps", "300", "--frame-every", "100"]


def start(args, cwd, **kwargs) -> subprocess.Popen:
    """The script as a user runs it, in its own process."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(process: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_all(jobs: dict) -> dict:
    """Starts every job (name: (args, folder[, extra environment])), then waits for all."""
    started = {}
    for name, (args, cwd, *extra) in jobs.items():
        env = {**os.environ, **extra[0]} if extra else None
        started[name] = start(args, cwd, env=env)
    try:
        return {name: finish(process) for name, process in started.items()}
    finally:
        for process in started.values():
            process.kill()  # only those a failed wait left running


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Seed 0 three times (once with XLA's default copies), seed 1 once, and a study of
    seeds 0 and 1, all on TINY settings."""
    base = tmp_path_factory.mktemp("tiny")
    copies = {"XLA_FLAGS": "--xla_cpu_copy_insertion_use_region_analysis=false"}
    jobs = {
        "seed0": ([*TINY, "--out", base / "seed0"], base),
        "seed0_again": ([*TINY, "--out", base / "seed0_again"], base),
        "seed0_copies": ([*TINY, "--out", base / "seed0_copies"], base, copies),
        "seed1": ([*TINY, "--seed", "1", "--out", base / "seed1"], base),
        "study": ([*TINY, "--seeds", "0,1", "--out", base / "study"], base),
    }
    results = run_all(jobs)
    for name, result in results.items():
        assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"
    return base, results
