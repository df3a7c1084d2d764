"""The real command line: outputs of a short run, determinism, the study, --help, bad input."""

import csv
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY, finish, run_all, start

import vanilla_gan as vg


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_short_run_writes_every_output(tiny_runs):
    base, results = tiny_runs
    out = base / "seed0"
    frames = sorted((out / "frames").glob("*.png"))
    assert [f.name for f in frames] == [f"step_{s:07d}.png" for s in (0, 100, 200, 300)]
    assert iio.improps(out / "vanilla_gan.gif", index=None).shape[0] == len(frames)
    assert np.load(out / "real.npy").shape == (500, 2)
    assert np.load(out / "samples.npy").shape == (2500, 2)
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 300 and config["frame_every"] == 100 and config["lr"] == 5e-5
    assert set(config) == {f.name for f in vg.dataclasses.fields(vg.Config)}
    stdout = results["seed0"].stdout
    assert stdout.startswith("settings: steps=300")
    assert str(out / "vanilla_gan.gif") in stdout
    assert results["seed0"].stderr == ""


def test_metrics_csv_has_a_row_per_frame(tiny_runs):
    base, _ = tiny_runs
    rows = read_csv(base / "seed0" / "metrics.csv")
    assert list(rows[0]) == vg.METRIC_COLUMNS
    assert [int(r["step"]) for r in rows] == [0, 100, 200, 300]
    assert math.isnan(float(rows[0]["d_loss"]))  # no training before the first frame
    # Each row's losses are the means over its interval of the per-step losses.
    reader = tf.train.load_checkpoint(str(base / "seed0" / "checkpoint"))
    losses = reader.get_tensor("losses/.ATTRIBUTES/VARIABLE_VALUE").astype(np.float64)
    assert losses.shape == (300, 2) and np.isfinite(losses).all()
    for previous, row in zip(rows, rows[1:], strict=False):
        interval = losses[int(previous["step"]) : int(row["step"])]
        assert float(row["d_loss"]) == pytest.approx(interval[:, 0].mean(), abs=2e-6)
        assert float(row["g_loss"]) == pytest.approx(interval[:, 1].mean(), abs=2e-6)
    assert len({r["d_loss"] for r in rows[1:]}) == 3  # not one value repeated


def test_summary_agrees_with_a_recomputation_from_samples(tiny_runs):
    base, results = tiny_runs
    out = base / "seed0"
    summary = json.loads((out / "summary.json").read_text())
    samples = np.load(out / "samples.npy")
    centres, sigma = np.array(summary["centres"]), summary["sigma"]
    # Recomputed here from the definitions, not through vanilla_gan.mode_metrics.
    distances = np.linalg.norm(samples[:, None] - centres[None], axis=2)
    good = distances.min(axis=1) < 3 * sigma
    counts = np.bincount(distances.argmin(axis=1)[good], minlength=5)
    final = summary["final"]
    assert final["mode_counts"] == counts.tolist()
    assert final["modes_captured"] == int((counts > 0).sum())
    assert final["high_quality_pct"] == pytest.approx(100 * good.mean())
    assert counts.sum() > 0, "the short run should already make high-quality samples"
    p = counts[counts > 0] / counts.sum()
    assert final["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(5 * p))))
    assert summary["steps_run"] == 300 and summary["wall_seconds"] > 0
    last_row = read_csv(out / "metrics.csv")[-1]
    assert int(last_row["modes_captured"]) == final["modes_captured"]
    assert results["seed0"].stdout.strip().endswith(summary["result"])


def test_same_seed_is_identical_and_another_seed_differs(tiny_runs):
    base, _ = tiny_runs
    first, again, other = (base / name for name in ("seed0", "seed0_again", "seed1"))
    for name in ("metrics.csv",):
        assert (first / name).read_text() == (again / name).read_text()
        assert (first / name).read_text() != (other / name).read_text()
    for name in ("samples.npy", "real.npy"):
        np.testing.assert_array_equal(np.load(first / name), np.load(again / name))
        assert not np.array_equal(np.load(first / name), np.load(other / name))


def test_region_analysis_changes_no_number(tiny_runs):
    """The speed flag the script gives XLA only drops copies: XLA's default copies give
    the same files to the bit."""
    base, _ = tiny_runs
    fast, copies = base / "seed0", base / "seed0_copies"
    assert (fast / "metrics.csv").read_text() == (copies / "metrics.csv").read_text()
    np.testing.assert_array_equal(np.load(fast / "samples.npy"), np.load(copies / "samples.npy"))


def test_study_rows_equal_the_single_runs(tiny_runs):
    base, results = tiny_runs
    study = base / "study"
    rows = read_csv(study / "study.csv")
    assert [r["seed"] for r in rows] == ["0", "1"]
    for row, single in zip(rows, ("seed0", "seed1"), strict=True):
        summary = json.loads((base / single / "summary.json").read_text())
        assert int(row["modes_captured"]) == summary["final"]["modes_captured"]
        assert float(row["reverse_kl"]) == pytest.approx(summary["final"]["reverse_kl"], 1e-5)
        seed_dir = study / f"seed_{row['seed']}"
        np.testing.assert_array_equal(
            np.load(seed_dir / "samples.npy"), np.load(base / single / "samples.npy")
        )
        assert (seed_dir / "metrics.csv").read_text() == (base / single / "metrics.csv").read_text()
        assert not (seed_dir / "frames").exists() or not any((seed_dir / "frames").iterdir())
    report = json.loads((study / "study.json").read_text())
    assert report["seeds"] == [0, 1]
    assert report["summary"]["seeds"] == 2
    assert "at least one mode missing at the end in" in results["study"].stdout


def test_help_lists_every_option_with_its_default(tmp_path):
    result = finish(start(["--help"], tmp_path))
    assert result.returncode == 0
    for option in ("--steps", "--batch-size", "--lr", "--seed", "--frame-every", "--fps"):
        assert option in result.stdout
    for option in ("--out", "--seeds", "--resume"):
        assert option in result.stdout
    assert "(default: 150000)" in result.stdout and "(default: 5e-05)" in result.stdout
    assert list(tmp_path.iterdir()) == []


BAD_INPUTS = {
    "steps_zero": (["--steps", "0"], "--steps"),
    "steps_text": (["--steps", "many"], "--steps"),
    "steps_float": (["--steps", "1.5"], "--steps"),
    "batch_negative": (["--batch-size", "-4"], "--batch-size"),
    "batch_too_big": (["--batch-size", "501"], "--batch-size"),
    "frame_every_zero": (["--frame-every", "0"], "--frame-every"),
    "frame_every_long": (["--steps", "100", "--frame-every", "101"], "--frame-every"),
    "fps_zero": (["--fps", "0"], "--fps"),
    "fps_nan": (["--fps", "nan"], "--fps"),
    "lr_negative": (["--lr", "-1e-4"], "--lr"),
    "lr_text": (["--lr", "fast"], "--lr"),
    "seeds_malformed": (["--seeds", "3-1"], "--seeds"),
    "seeds_text": (["--seeds", "a,b"], "--seeds"),
    "out_under_a_file": (["--out", "blocker/out"], "--out"),
    "unknown_option": (["--epochs", "3"], "--epochs"),
    "resume_nothing": (["--resume", "--out", "empty"], "--resume"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    jobs = {}
    for name, (args, _) in BAD_INPUTS.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "blocker").write_text("a file where a folder is wanted")
        (folder / "empty").mkdir()
        jobs[name] = (args, folder)
    results = run_all(jobs)
    return {name: (jobs[name][1], result) for name, result in results.items()}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_exit_2(bad_runs, name):
    folder, result = bad_runs[name]
    _, option = BAD_INPUTS[name]
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0] and "Traceback" not in result.stderr
    value = BAD_INPUTS[name][0][-1]
    if name not in ("unknown_option", "resume_nothing"):
        assert value in lines[0]  # the bad value is named
    assert result.stdout == ""
    assert sorted(p.name for p in folder.iterdir()) == ["blocker", "empty"]
    assert list((folder / "empty").iterdir()) == []


def test_new_run_replaces_the_earlier_runs_frames(tmp_path):
    first = finish(start([*TINY, "--out", "out"], tmp_path))
    assert first.returncode == 0
    second = finish(start(["--steps", "20", "--frame-every", "20", "--out", "out"], tmp_path))
    assert second.returncode == 0
    assert "removed 4 frames" in second.stdout
    names = sorted(p.name for p in (tmp_path / "out" / "frames").iterdir())
    assert names == ["step_0000000.png", "step_0000020.png"]
    assert iio.improps(tmp_path / "out" / "vanilla_gan.gif", index=None).shape[0] == 2
