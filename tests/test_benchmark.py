"""The throughput benchmark runs end to end and prints every figure (never judged on speed)."""

import re
import subprocess
import sys

from conftest import ROOT


def test_benchmark_prints_every_figure():
    command = [sys.executable, str(ROOT / "benchmarks" / "throughput.py")]
    command += ["--steps", "30", "--repeats", "1", "--matmul-size", "128", "--run-steps", "40"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    number = r"[\d.]+"
    for pattern in (
        rf"training loop .*: +{number} steps/s",
        rf"baseline .*: +{number} steps/s",
        rf"float32 matmul 128x128: +{number} GFLOP/s",
        rf"one step: 0\.4\d\d GFLOP .* limit +{number} steps/s",
        rf"loop / baseline: {number}x",
        rf"share of the arithmetic limit reached: {number}%",
        rf"run of 40 steps, 2 frames, {number} s wall: training {number}%, drawing {number}%,"
        rf" GIF {number}%",
        rf"projected default run \(150000 steps, 101 frames\): {number} min,"
        rf" drawing \+ GIF {number}%",
    ):
        assert re.search(pattern, result.stdout), f"{pattern!r} not in:\n{result.stdout}"
