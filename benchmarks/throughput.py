"""Training throughput against a per-step baseline and the machine's arithmetic limit.

    python benchmarks/throughput.py            # about three minutes on 2 cores

Prints, each a median over --repeats: steps/s of the project's compiled loop at the
default settings, steps/s of the identical step as a plain tf.function called once
per step, the float32 matrix-product rate and the arithmetic limit in steps/s it
implies, and the split of a shortened default run's wall time between training,
drawing frames and writing the GIF, projected to the full-length default run.
"""

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vanilla_gan as vg  # noqa: E402  (it also quiets TensorFlow's start-up notices)

tf = vg.tf


def dense_flops(batch: int, sizes: list, input_grad_of_first: bool) -> dict:
    """Multiply-adds x 2 of a dense stack: forward, weight gradients, input gradients."""
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    forward = sum(2 * batch * n_in * n_out for n_in, n_out in pairs)
    grad_weights = forward
    grad_inputs = sum(
        2 * batch * n_in * n_out
        for i, (n_in, n_out) in enumerate(pairs)
        if i > 0 or input_grad_of_first
    )
    return {"forward": forward, "weights": grad_weights, "inputs": grad_inputs}


def step_flops(batch: int) -> int:
    """Matrix-product FLOPs of one training step, counted from the layer sizes."""
    hidden = [vg.HIDDEN_UNITS] * vg.HIDDEN_LAYERS
    g = dense_flops(batch, [vg.Z_DIM, *hidden, 2], input_grad_of_first=False)
    d = dense_flops(2 * batch, [2, *hidden, 1], input_grad_of_first=False)
    d_single = dense_flops(batch, [2, *hidden, 1], input_grad_of_first=True)
    # Discriminator update: G forward, D forward and backward on real+fake.
    d_update = g["forward"] + d["forward"] + d["weights"] + d["inputs"]
    # Generator update: G and D forward, D input gradients only, G backward.
    g_update = g["forward"] + d_single["forward"] + d_single["inputs"]
    g_update += g["weights"] + g["inputs"]
    return d_update + g_update


def rate(work, units: float) -> float:
    """Units per second of one call of work."""
    started = time.perf_counter()
    work()
    return units / (time.perf_counter() - started)


def median_rate(work, units: float, repeats: int) -> float:
    return statistics.median(rate(work, units) for _ in range(repeats))


def loop_work(config: vg.Config, steps: int, repeats: int):
    """The project's loop: compiled calls of up to MAX_STEPS_PER_CALL steps."""
    # The loss history must hold every step the repeats run.
    gan = vg.GAN(dataclasses.replace(config, steps=steps * repeats + 10), real_points())
    gan.train_steps(tf.constant(10, tf.int64))  # compile

    def work():
        done = 0
        while done < steps:
            n = min(vg.MAX_STEPS_PER_CALL, steps - done)
            gan.train_steps(tf.constant(n, tf.int64))
            done += n
        gan.losses[int(gan.step.numpy()) - 1].numpy()

    return work


def baseline_work(config: vg.Config, steps: int):
    """The identical step, one plain tf.function call per step."""
    gan = vg.GAN(config, real_points())
    one_step = tf.function(gan.train_step)
    counter = iter(range(10**9))
    one_step(tf.constant(next(counter), tf.int64))  # trace

    def work():
        for _ in range(steps):
            d_loss, _ = one_step(tf.constant(next(counter), tf.int64))
        d_loss.numpy()

    return work


def loop_and_baseline_rates(config: vg.Config, steps: int, repeats: int) -> tuple:
    """Median steps/s of both, their repeats alternating so that a machine whose speed
    drifts (a shared or throttling CPU) affects both alike."""
    baseline_steps = max(200, steps // 5)
    loop = loop_work(config, steps, repeats + 1)
    baseline = baseline_work(config, baseline_steps)
    loop()  # untimed: the first calls after a compile run slow
    baseline()
    loop_rates, baseline_rates = [], []
    for _ in range(repeats):
        loop_rates.append(rate(loop, steps))
        baseline_rates.append(rate(baseline, baseline_steps))
    return statistics.median(loop_rates), statistics.median(baseline_rates)


def matmul_gflops(size: int, repeats: int) -> float:
    a = tf.random.stateless_normal([size, size], [1, 2])
    b = tf.random.stateless_normal([size, size], [3, 4])
    product = tf.function(tf.linalg.matmul)
    product(a, b).numpy()
    calls = 10

    def work():
        for _ in range(calls):
            c = product(a, b)
        c.numpy()

    return median_rate(work, calls * 2 * size**3 / 1e9, repeats)


def run_split(steps: int) -> dict:
    """A default-settings run cut to `steps`, a frame every 1,500 steps as at full length."""
    frame_every = min(steps, vg.Config().frame_every)
    with tempfile.TemporaryDirectory() as folder:
        config = vg.Config(steps=steps, frame_every=frame_every, out=folder)
        run = vg.Run(config, Path(folder), quiet=True)
        started = time.perf_counter()
        run.execute()
        wall = time.perf_counter() - started
        frames = len(run.frames)
        # The GIF of a full-length run stitches 101 frames; time one of that size.
        full_frames = len(vg.frame_steps(vg.Config()))
        repeated = (run.frames * full_frames)[:full_frames]
        gif_started = time.perf_counter()
        vg.write_gif(Path(folder) / "full.gif", repeated, config.fps)
        gif_full = time.perf_counter() - gif_started
    return {"wall": wall, "frames": frames, "gif_full": gif_full, **run.timing}


def real_points():
    return vg.make_dataset(0)[0]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per median")
    parser.add_argument("--matmul-size", type=int, default=2048, help="square product size")
    parser.add_argument("--run-steps", type=int, default=4500, help="length of the split run")
    args = parser.parse_args(argv)

    config = vg.Config()
    full = config.steps
    flops = step_flops(config.batch_size)
    print(
        f"machine: {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads,"
        f" TensorFlow {tf.__version__}, {len(tf.config.list_physical_devices('GPU'))} GPUs"
    )
    loop, baseline = loop_and_baseline_rates(config, args.steps, args.repeats)
    print(f"training loop (XLA, up to {vg.MAX_STEPS_PER_CALL} steps a call): {loop:8.1f} steps/s")
    print(f"baseline (plain tf.function, one call a step):  {baseline:8.1f} steps/s")
    gflops = matmul_gflops(args.matmul_size, args.repeats)
    limit = gflops * 1e9 / flops
    print(f"float32 matmul {args.matmul_size}x{args.matmul_size}: {gflops:8.1f} GFLOP/s")
    print(f"one step: {flops / 1e9:.3f} GFLOP of matrix products -> limit {limit:8.1f} steps/s")
    print(f"loop / baseline: {loop / baseline:.2f}x")
    print(f"share of the arithmetic limit reached: {100 * loop / limit:.1f}%")

    split = run_split(args.run_steps)
    shares = {k: 100 * split[k] / split["wall"] for k in ("training", "drawing", "gif")}
    print(
        f"run of {args.run_steps} steps, {split['frames']} frames, {split['wall']:.1f} s wall:"
        f" training {shares['training']:.1f}%, drawing {shares['drawing']:.1f}%,"
        f" GIF {shares['gif']:.1f}%, other {100 - sum(shares.values()):.1f}%"
    )
    # Full length: training at the loop's rate, per-frame costs as measured, the GIF of
    # all frames as timed. "Other" is metrics, checkpoints and the first call's compile.
    frames_full = len(vg.frame_steps(config))
    per_frame = (split["wall"] - split["training"] - split["gif"]) / split["frames"]
    draw_full = split["drawing"] / split["frames"] * frames_full
    wall_full = full / loop + per_frame * frames_full + split["gif_full"]
    print(
        f"projected default run ({full} steps, {frames_full} frames): {wall_full / 60:.1f} min,"
        f" drawing + GIF {100 * (draw_full + split['gif_full']) / wall_full:.1f}%"
    )


if __name__ == "__main__":
    main()
