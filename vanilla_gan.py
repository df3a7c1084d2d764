"""A vanilla GAN learns a mixture of five 2-D Gaussians, and shows mode collapse.

This reproduces, in TensorFlow 2, the 2019 TensorFlow 1 experiment whose recipe is
in the project README: a 2-512-512-512-2 generator against a 2-512-512-512-1
discriminator, sigmoid cross-entropy losses, Adam at 5e-5, batch 32, 150,000 steps.

    python vanilla_gan.py                  # the reference run, 12-16 min on 2 CPU cores
    python vanilla_gan.py --seeds 0-9      # the same recipe over ten seeds
    python vanilla_gan.py --resume         # continue an interrupted run in --out

A run writes into --out (default: the current folder): frames/step_NNNNNNN.png,
vanilla_gan.gif, metrics.csv, real.npy, samples.npy, config.json, summary.json
and a checkpoint/ folder to resume from.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image  # Pillow comes with matplotlib and imageio


@contextlib.contextmanager
def silenced_stderr():
    """TensorFlow's C++ start-up notices ignore TF_CPP_MIN_LOG_LEVEL; hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with silenced_stderr():
    import keras
    import tensorflow as tf

matplotlib.use("Agg")

# ----------------------------------------------------------------------------- settings

N_MODES = 5
POINTS_PER_MODE = 100
MODE_VARIANCE = 0.0125
HIDDEN_UNITS = 512
HIDDEN_LAYERS = 3
Z_DIM = 2
PLOT_POINTS = 1_000  # generated points drawn in a frame
EVAL_SAMPLES = 2_500  # generated points the mode metrics are computed on
QUALITY_SIGMAS = 3.0  # a sample within 3 sigma of its nearest centre is high quality
PLOT_LIMIT = 2.75  # the plot window is [-PLOT_LIMIT, PLOT_LIMIT]^2 in every frame
MAX_STEPS_PER_CALL = 500  # a compiled call returns at least this often (Ctrl-C, progress)

# Streams of the counter-based random numbers: training z uses (seed, step) with
# step >= 0, so negative stream ids never collide with it.
INIT_STREAM = -1_000
EVAL_STREAM = -2


@dataclasses.dataclass
class Config:
    steps: int = 150_000
    """training steps (one discriminator then one generator update each)"""
    batch_size: int = 32
    """real and fake points per minibatch"""
    lr: float = 5e-5
    """Adam learning rate of both networks"""
    beta1: float = 0.9
    """Adam beta1 of both networks"""
    beta2: float = 0.999
    """Adam beta2 of both networks"""
    epsilon: float = 1e-8
    """Adam epsilon of both networks"""
    seed: int = 0
    """fixes the data, the initial weights and every z draw"""
    frame_every: int = 0
    """steps between frames, metric rows and checkpoints"""
    fps: float = 10.0
    """frames per second of the GIF"""
    out: str = "."
    """folder for the frames, GIF and other outputs"""
    seeds: str = ""
    """a study over seeds instead of one run: a range '0-9' or a list '1,4,7'"""
    study_frames: bool = False
    """in a study, also draw frames and a GIF for every seed"""
    resume: bool = False
    """continue the interrupted run in --out from its last checkpoint"""
    xla: bool = True
    """compile the training loop with XLA (off: a plain graph, slower, other bits)"""

    def __post_init__(self):
        if self.frame_every == 0:  # not given: 100 frames over the run, whatever its length
            self.frame_every = math.ceil(self.steps / 100)


# Settings that change what a run computes; a resumed run must keep all of them.
RECIPE_FIELDS = ("steps", "batch_size", "lr", "beta1", "beta2", "epsilon", "seed")
RECIPE_FIELDS += ("frame_every", "xla")

# ----------------------------------------------------------------------------- data


def true_centres() -> np.ndarray:
    """The five centres, the first at the top of the unit circle, the rest clockwise."""
    angles = 2 * np.pi * np.arange(N_MODES) / N_MODES
    return np.stack([np.sin(angles), np.cos(angles)], axis=1)


def make_dataset(seed: int):
    """The 500 normalised training points, and the centres and sigma mapped alike."""
    rng = np.random.default_rng(seed)
    sigma = math.sqrt(MODE_VARIANCE)
    centres = true_centres()
    points = np.concatenate([rng.normal(c, sigma, size=(POINTS_PER_MODE, 2)) for c in centres])
    shift = points.mean(axis=0)
    points = points - shift
    scale = points.max() * 0.5  # the largest single coordinate becomes exactly 2.0
    points = points / scale
    rng.shuffle(points)
    return points.astype(np.float32), (centres - shift) / scale, sigma / scale


def minibatches(points: np.ndarray, batch_size: int) -> np.ndarray:
    """The fixed minibatches an epoch walks; the last len % batch_size points are unused."""
    n_batches = len(points) // batch_size
    return points[: n_batches * batch_size].reshape(n_batches, batch_size, 2)


# ----------------------------------------------------------------------------- networks


class ReferenceNormal(keras.initializers.Initializer):
    """N(0, 2 / shape[0]) for weights AND biases, as the 2019 code drew them.

    For a bias shape[0] is its own length, so the 2-unit generator output bias gets
    s = 1.0 and the 1-unit discriminator output bias s = 1.414: a quirk of the
    reference that is kept because it shapes the first moves of the game.
    """

    def __init__(self, seed: int, layer_index: int):
        self.seed = seed
        self.layer_index = layer_index

    def __call__(self, shape, dtype=None):
        key = tf.constant([self.seed, INIT_STREAM - self.layer_index], tf.int64)
        std = math.sqrt(2.0 / shape[0])
        return tf.random.stateless_normal(shape, key, stddev=std, dtype=dtype)


def mlp(name: str, outputs: int, seed: int, first_layer_index: int) -> keras.Sequential:
    sizes = [HIDDEN_UNITS] * HIDDEN_LAYERS + [outputs]
    layers = [keras.Input((2,))]
    for i, units in enumerate(sizes):
        index = first_layer_index + 2 * i
        layers.append(
            keras.layers.Dense(
                units,
                activation="relu" if i < HIDDEN_LAYERS else None,
                kernel_initializer=ReferenceNormal(seed, index),
                bias_initializer=ReferenceNormal(seed, index + 1),
            )
        )
    return keras.Sequential(layers, name=name)


def make_generator(seed: int) -> keras.Sequential:
    """z (2-D) -> 512 -> 512 -> 512 -> x (2-D), ReLU hidden, linear output."""
    return mlp("generator", 2, seed, first_layer_index=0)


def make_discriminator(seed: int) -> keras.Sequential:
    """x (2-D) -> 512 -> 512 -> 512 -> logit; D(x) = sigmoid(logit)."""
    return mlp("discriminator", 1, seed, first_layer_index=100)


# ----------------------------------------------------------------------------- losses


def cross_entropy(logits, label: float):
    labels = tf.fill(tf.shape(logits), label)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))


def discriminator_loss(real_logits, fake_logits):
    return cross_entropy(real_logits, 1.0) + cross_entropy(fake_logits, 0.0)


def generator_loss(fake_logits):
    """The non-saturating form: the generator maximises log D(G(z))."""
    return cross_entropy(fake_logits, 1.0)


# ----------------------------------------------------------------------------- training


# By default XLA copies every weight matrix once per step inside the compiled loop,
# because Adam overwrites a weight that a product may still read; region analysis
# proves the copies unneeded. Buffers change, the arithmetic does not: runs stay
# bit-identical and train about 8% faster (paired runs on 2 cores). XLA reads XLA_FLAGS
# at the first compile in a process, so a process that compiled before building a GAN
# just runs slower. XLA aborts the process on a flag it does not know, and the flag is
# not in every TensorFlow the requirements allow, hence the version check.
XLA_CPU_FLAG_NAME = "xla_cpu_copy_insertion_use_region_analysis"
XLA_CPU_FLAG = f"--{XLA_CPU_FLAG_NAME}=true"
XLA_CPU_FLAG_SINCE = (2, 20)


def enable_xla_region_analysis() -> None:
    version = tuple(int(part) for part in tf.__version__.split(".")[:2])
    flags = os.environ.get("XLA_FLAGS", "")
    if version >= XLA_CPU_FLAG_SINCE and XLA_CPU_FLAG_NAME not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()


class GAN:
    """Both networks, both optimisers, the step and the per-step loss history."""

    def __init__(self, config: Config, real_points: np.ndarray):
        self.config = config
        if config.xla:
            enable_xla_region_analysis()
        self.generator = make_generator(config.seed)
        self.discriminator = make_discriminator(config.seed)
        adam = dict(
            learning_rate=config.lr,
            beta_1=config.beta1,
            beta_2=config.beta2,
            epsilon=config.epsilon,
        )
        self.g_optimizer = keras.optimizers.Adam(**adam)
        self.d_optimizer = keras.optimizers.Adam(**adam)
        # Built now: a compiled loop cannot create the slot variables on first use.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.wall_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.losses = tf.Variable(tf.zeros([config.steps, 2]), trainable=False)
        self.batches = tf.constant(minibatches(real_points, config.batch_size))
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator,
            discriminator=self.discriminator,
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
            step=self.step,
            losses=self.losses,
            wall_seconds=self.wall_seconds,
        )
        self.train_steps = tf.function(self._train_steps, jit_compile=config.xla)

    def noise(self, step):
        """Two z batches for this step, a pure function of (seed, step)."""
        key = tf.stack([tf.constant(self.config.seed, tf.int64), step])
        shape = [2, self.config.batch_size, Z_DIM]
        return tf.random.stateless_uniform(shape, key, minval=-1.0, maxval=1.0)

    def train_step(self, step):
        """One discriminator update, then one generator update on fresh z."""
        z = self.noise(step)
        real = tf.gather(self.batches, step % self.batches.shape[0])
        n_real = self.config.batch_size
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables

        with tf.GradientTape() as tape:
            fake = self.generator(z[0], training=True)
            # Real and fake in one call: the same logits, half the calls.
            logits = self.discriminator(tf.concat([real, fake], 0), training=True)
            d_loss = discriminator_loss(logits[:n_real], logits[n_real:])
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars, strict=True))

        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(z[1], training=True))
            g_loss = generator_loss(fake_logits)
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars, strict=True))
        return d_loss, g_loss

    def _train_steps(self, n_steps):
        """n_steps training steps in one compiled call, losses kept per step."""
        first = self.step.read_value()
        for i in tf.range(tf.cast(n_steps, tf.int64)):
            step = first + i
            d_loss, g_loss = self.train_step(step)
            # A scatter, not a slice assignment: XLA needs static slice bounds.
            self.losses.scatter_nd_update(
                tf.reshape(step, [1, 1]), tf.reshape(tf.stack([d_loss, g_loss]), [1, 2])
            )
        self.step.assign_add(tf.cast(n_steps, tf.int64))

    def sample(self, z: np.ndarray) -> np.ndarray:
        return self.generator(z, training=False).numpy()

    def d_probabilities(self, x: np.ndarray) -> np.ndarray:
        return tf.sigmoid(self.discriminator(x, training=False)).numpy()[:, 0]


def eval_noise(seed: int) -> np.ndarray:
    """The fixed z batch every frame and every metric is computed from."""
    key = tf.constant([seed, EVAL_STREAM], tf.int64)
    z = tf.random.stateless_uniform([EVAL_SAMPLES, Z_DIM], key, minval=-1.0, maxval=1.0)
    return z.numpy()


# ----------------------------------------------------------------------------- measurement


def mode_metrics(samples: np.ndarray, centres: np.ndarray, sigma: float) -> dict:
    """Modes captured, % high quality and reverse KL, as VEEGAN and PacGAN define them."""
    distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    high_quality = distances.min(axis=1) < QUALITY_SIGMAS * sigma
    counts = np.bincount(nearest[high_quality], minlength=len(centres))
    total = counts.sum()
    shares = counts / total if total else np.zeros(len(centres))
    kept = shares > 0
    reverse_kl = float(np.sum(shares[kept] * np.log(shares[kept] * len(centres))))
    return {
        "modes_captured": int(kept.sum()),
        "high_quality_pct": float(100.0 * high_quality.mean()),
        "reverse_kl": reverse_kl if total else float("nan"),
        "mode_counts": [int(c) for c in counts],
    }


def describe(metrics: dict) -> str:
    """The result in words: 'captured 4 of 5 modes (mode 3 missing), 97.1% high quality'."""
    missing = [str(k) for k, c in enumerate(metrics["mode_counts"]) if c == 0]
    text = f"captured {metrics['modes_captured']} of {N_MODES} modes"
    if missing:
        text += f" (mode{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing)"
    return text + f", {metrics['high_quality_pct']:.1f}% high quality"


# ----------------------------------------------------------------------------- files


UMASK = os.umask(0o022)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yields a temporary name beside path, renamed onto path only on success."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp's 0600 is for the temporary only
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def json_safe(data):
    """NaN (an undefined metric) as null, since JSON has no NaN."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def save_json(path: Path, data) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.save(f, array)


METRIC_COLUMNS = ["step", "d_loss", "g_loss", "modes_captured", "high_quality_pct"]
METRIC_COLUMNS += ["reverse_kl"] + [f"mode_{k}_count" for k in range(N_MODES)]


def metrics_row(step: int, d_loss: float, g_loss: float, metrics: dict) -> list:
    row = [step, f"{d_loss:.6f}", f"{g_loss:.6f}", metrics["modes_captured"]]
    row += [f"{metrics['high_quality_pct']:.2f}", f"{metrics['reverse_kl']:.6f}"]
    return row + metrics["mode_counts"]


def save_csv(path: Path, header: list, rows: list) -> None:
    """The whole table, rewritten atomically: a reader never sees half a row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as temporary:
        temporary.write_text(buffer.getvalue())


def read_csv_rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


# ----------------------------------------------------------------------------- drawing

GRID_POINTS = 160
COLOURS = {
    "real": "#d62728",
    "fake": "#2ca02c",
    "centre": "#000000",
    "d_loss": "#1f77b4",
    "g_loss": "#ff7f0e",
}


def plot_grid() -> np.ndarray:
    axis = np.linspace(-PLOT_LIMIT, PLOT_LIMIT, GRID_POINTS, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def draw_frame(path: Path, view: dict) -> None:
    """One frame: D(x) under real and generated points, and the loss curves."""
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(10, 4.6), dpi=80)
    extent = [-PLOT_LIMIT, PLOT_LIMIT, -PLOT_LIMIT, PLOT_LIMIT]
    d_map = view["d_map"].reshape(GRID_POINTS, GRID_POINTS)
    image = ax.imshow(d_map, extent=extent, origin="lower", cmap="Blues", vmin=0, vmax=1, alpha=0.8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="D(x), belief x is real")
    real, fake = view["real"], view["fake"]
    ax.scatter(real[:, 0], real[:, 1], s=6, c=COLOURS["real"], label="real data")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c=COLOURS["fake"], label="generated G(z)")
    centres = view["centres"]
    ax.scatter(
        centres[:, 0], centres[:, 1], s=90, marker="x", c=COLOURS["centre"], label="true centres"
    )
    for k, (x, y) in enumerate(centres):
        ring = plt.Circle((x, y), QUALITY_SIGMAS * view["sigma"], fill=False, lw=0.8, ls="--")
        ax.add_patch(ring)
        ax.annotate(str(k), (x, y), xytext=(7, 7), textcoords="offset points", fontsize=8)
    ax.plot([], [], ls="--", c="black", lw=0.8, label="3σ: high quality inside")
    ax.set(xlim=extent[:2], ylim=extent[2:], aspect="equal")
    ax.legend(loc="lower left", fontsize=7, framealpha=0.9)

    curve_steps, d_curve, g_curve = view["curves"]
    ax_loss.plot(curve_steps, d_curve, c=COLOURS["d_loss"], label="discriminator")
    ax_loss.plot(curve_steps, g_curve, c=COLOURS["g_loss"], label="generator")
    ax_loss.set(
        xlim=(0, view["total_steps"]), xlabel="step", ylabel="mean loss since the previous frame"
    )
    ax_loss.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k" if x else "0")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.grid(alpha=0.3)

    metrics = view["metrics"]
    fig.suptitle(
        f"step {view['step']:,}   modes captured {metrics['modes_captured']} of {N_MODES}"
        f"   high quality {metrics['high_quality_pct']:.1f}%"
    )
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.12, top=0.9, wspace=0.38)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png")
    plt.close(fig)


def shared_palette(images: list, colours: int = 64) -> list:
    """The frames mapped onto one palette of `colours`, without dithering.

    Left to itself the GIF writer picks a palette per frame and dithers the D(x)
    shading into noise that compresses badly: the default run's GIF is then ~6 MB.
    One shared palette makes it ~2.4 MB and keeps colours steady between frames.
    """
    sample = np.concatenate(images[:: max(1, len(images) // 10)], axis=0)
    # Small marks (the loss curves, the legend) are too few pixels for the median cut to
    # keep their colours: add a swatch of each so the palette holds them exactly.
    swatch = [
        np.full((40, sample.shape[1], 3), matplotlib.colors.to_rgb(c)) for c in COLOURS.values()
    ]
    sample = np.concatenate([sample, (np.concatenate(swatch) * 255).astype(np.uint8)])
    palette = Image.fromarray(sample).quantize(colours, method=Image.Quantize.MEDIANCUT)
    mapped = (
        Image.fromarray(im).quantize(palette=palette, dither=Image.Dither.NONE) for im in images
    )
    return [np.asarray(im.convert("RGB")) for im in mapped]


def write_gif(path: Path, frame_paths: list, fps: float, hold_seconds: float = 2.0) -> None:
    """Stitch exactly these frames, holding the last one about hold_seconds."""
    images = shared_palette([iio.imread(p)[..., :3] for p in frame_paths])
    frame_ms = 1000.0 / fps
    durations = [frame_ms] * len(images)
    durations[-1] = max(frame_ms, hold_seconds * 1000.0)
    if len(images) == 1:  # Pillow wants one number, not a list, for a single frame
        durations = durations[0]
    with atomic_path(path) as temporary:
        iio.imwrite(temporary, images, extension=".gif", duration=durations, loop=0)


# ----------------------------------------------------------------------------- the run


DIVERGED = 3  # exit status of a run stopped by a NaN or infinite loss


class Interrupted(Exception):
    """The run stopped early at a safe point; exit status is in .status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class StopFlag:
    """Set by SIGINT/SIGTERM; a second signal ends the process at once."""

    signal_number: int | None = None

    @classmethod
    def install(cls) -> dict:
        """Installs the handlers; returns the ones they replace."""
        cls.signal_number = None
        return {sig: signal.signal(sig, cls._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    @classmethod
    def _handle(cls, sig, _frame) -> None:
        cls.signal_number = sig
        # Every file is written through a rename, so dying now leaves only whole files.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Progress:
    """One line that updates in place on a terminal, plain lines otherwise."""

    def __init__(self, total_steps: int, quiet: bool = False):
        self.total_steps = total_steps
        self.stream = sys.stdout
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.last_plain = -math.inf

    def update(self, step, rate, d_loss, g_loss, modes, final=False) -> None:
        if self.quiet:
            return
        left = (self.total_steps - step) / rate if rate > 0 else math.nan
        line = (
            f"step {step:>7,}/{self.total_steps:,}  D loss {d_loss:.3f}  G loss {g_loss:.3f}"
            f"  modes {modes}/{N_MODES}  {rate:,.0f} steps/s  left {format_seconds(left)}"
        )
        if self.tty:
            # Clear to the end of the line: the previous one may have been longer.
            self.stream.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
            self.stream.flush()
        elif final or time.monotonic() - self.last_plain >= 10.0:
            print(line, file=self.stream, flush=True)
            self.last_plain = time.monotonic()


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def frame_steps(config: Config) -> list:
    """Step 0, every frame_every steps, and the last step."""
    steps = list(range(0, config.steps, config.frame_every))
    return steps + [config.steps]


def frame_path(out: Path, step: int) -> Path:
    return out / "frames" / f"step_{step:07d}.png"


class Run:
    """One training run with its outputs in `out`."""

    def __init__(self, config: Config, out: Path, draw: bool = True, quiet: bool = False):
        self.config = config
        self.out = out
        self.draw = draw
        self.quiet = quiet
        self.real, self.centres, self.sigma = make_dataset(config.seed)
        self.gan = GAN(config, self.real)
        self.z_eval = eval_noise(config.seed)
        self.grid = plot_grid()
        self.rows: list = []  # metrics.csv rows so far
        self.frames: list = []  # frame paths this run wrote, in order
        self.first_capture: dict = {}  # mode -> first frame step it was captured
        self.timing = {"training": 0.0, "drawing": 0.0, "gif": 0.0, "checkpoint": 0.0}
        self.manager: tf.train.CheckpointManager | None = None  # opened by execute
        self.session_start = time.perf_counter()

    # -- bookkeeping ------------------------------------------------------------

    def log(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def remove_temporaries(self) -> None:
        """Half-written files a killed run left behind (never under their real names)."""
        for folder in (self.out, self.out / "frames"):
            for path in folder.glob(".*.tmp*"):
                path.unlink()

    def start_fresh(self) -> None:
        self.remove_temporaries()
        old = sorted((self.out / "frames").glob("step_*.png"))
        for path in old:
            path.unlink()
        if old:
            self.log(f"replaced an earlier run: removed {len(old)} frames from {self.out}/frames")
        for name in ("metrics.csv", "summary.json", "samples.npy", "vanilla_gan.gif"):
            with contextlib.suppress(FileNotFoundError):
                (self.out / name).unlink()
        shutil.rmtree(self.out / "checkpoint", ignore_errors=True)
        (self.out / "frames").mkdir(parents=True, exist_ok=True)
        save_json(self.out / "config.json", dataclasses.asdict(self.config))
        save_npy(self.out / "real.npy", self.real)
        self.open_checkpoints()

    def open_checkpoints(self) -> None:
        self.manager = tf.train.CheckpointManager(
            self.gan.checkpoint, self.out / "checkpoint", max_to_keep=2
        )

    def restore(self) -> None:
        """Back to the last checkpoint; later frames and rows are dropped."""
        self.remove_temporaries()
        self.open_checkpoints()
        self.gan.checkpoint.restore(self.manager.latest_checkpoint).assert_consumed()
        step = int(self.gan.step.numpy())
        schedule = [s for s in frame_steps(self.config) if s <= step]
        for path in (self.out / "frames").glob("step_*.png"):
            if int(path.stem.split("_")[1]) not in schedule:
                path.unlink()
        self.frames = [frame_path(self.out, s) for s in schedule]
        self.frames = [p for p in self.frames if p.exists()]
        rows = read_csv_rows(self.out / "metrics.csv")
        self.rows = [[int(r[0])] + r[1:] for r in rows if int(r[0]) in schedule]
        for row in self.rows:
            self.note_captures(row[0], [int(c) for c in row[-N_MODES:]])
        if step == self.config.steps:
            self.log(f"the run in {self.out} is complete; writing its GIF and summary again")
        else:
            self.log(f"resumed from the checkpoint at step {step:,}")

    def note_captures(self, step: int, counts: list) -> None:
        for mode, count in enumerate(counts):
            if count > 0:
                self.first_capture.setdefault(mode, step)

    def interval_losses(self, step: int) -> tuple:
        """Mean losses over the steps since the previous frame (NaN at step 0)."""
        previous = max((s for s in frame_steps(self.config) if s < step), default=0)
        if step == 0:
            return math.nan, math.nan
        chunk = self.gan.losses[previous:step].numpy().astype(np.float64)
        return float(chunk[:, 0].mean()), float(chunk[:, 1].mean())

    # -- measurement and frames --------------------------------------------------

    def measure(self) -> tuple:
        samples = self.gan.sample(self.z_eval)
        return samples, mode_metrics(samples, self.centres, self.sigma)

    def frame(self, step: int, scheduled: bool = True) -> dict:
        """Metrics (and a frame) at this step; a scheduled one is a metrics.csv row."""
        samples, metrics = self.measure()
        d_loss, g_loss = self.interval_losses(step)
        if scheduled:
            self.rows.append(metrics_row(step, d_loss, g_loss, metrics))
            save_csv(self.out / "metrics.csv", METRIC_COLUMNS, self.rows)
            self.note_captures(step, metrics["mode_counts"])
        if self.draw:
            started = time.perf_counter()
            path = frame_path(self.out, step)
            draw_frame(path, self.frame_view(step, samples, metrics))
            if path not in self.frames:
                self.frames.append(path)
            self.timing["drawing"] += time.perf_counter() - started
        return metrics

    def frame_view(self, step: int, samples: np.ndarray, metrics: dict) -> dict:
        curve = [(int(r[0]), float(r[1]), float(r[2])) for r in self.rows if int(r[0]) > 0]
        curve = np.array(curve).reshape(-1, 3).T
        return {
            "step": step,
            "total_steps": self.config.steps,
            "d_map": self.gan.d_probabilities(self.grid),
            "real": self.real,
            "fake": samples[:PLOT_POINTS],
            "centres": self.centres,
            "sigma": self.sigma,
            "curves": curve,
            "metrics": metrics,
        }

    def wall_seconds(self) -> float:
        """Wall time of the run, over every session of it (a resumed run adds up)."""
        return float(self.gan.wall_seconds.numpy()) + time.perf_counter() - self.session_start

    def save_checkpoint(self) -> None:
        started = time.perf_counter()
        self.gan.wall_seconds.assign(self.wall_seconds())
        self.session_start = time.perf_counter()
        self.manager.save(checkpoint_number=int(self.gan.step.numpy()))
        self.timing["checkpoint"] += time.perf_counter() - started

    def write_gif(self) -> None:
        if self.draw and self.frames:
            started = time.perf_counter()
            write_gif(self.out / "vanilla_gan.gif", self.frames, self.config.fps)
            self.timing["gif"] += time.perf_counter() - started

    # -- training ----------------------------------------------------------------

    def train_until(self, target: int, progress: Progress, clock: dict) -> None:
        """Compiled calls of at most MAX_STEPS_PER_CALL steps up to step `target`."""
        while (step := int(self.gan.step.numpy())) < target:
            if StopFlag.signal_number is not None:
                raise Interrupted(128 + StopFlag.signal_number, "stopped by a signal")
            n = min(MAX_STEPS_PER_CALL, target - step)
            started = time.perf_counter()
            self.gan.train_steps(tf.constant(n, tf.int64))
            losses = self.gan.losses[step : step + n].numpy()
            self.timing["training"] += time.perf_counter() - started
            bad = np.flatnonzero(~np.isfinite(losses).all(axis=1))
            if bad.size:
                value = losses[bad[0]]
                raise Interrupted(DIVERGED, f"the losses became {value} at step {step + bad[0]}")
            clock["steps"] += n
            progress.update(step + n, *self.progress_figures(clock))

    def progress_figures(self, clock: dict) -> tuple:
        """Steps/s since the run (re)started, the latest step's losses, modes captured."""
        rate = clock["steps"] / max(1e-9, time.perf_counter() - clock["start"])
        d_loss, g_loss = self.gan.losses[int(self.gan.step.numpy()) - 1].numpy()
        return rate, d_loss, g_loss, clock["modes"]

    def execute(self) -> dict:
        """Train to the end, a frame at every scheduled step; returns the summary."""
        self.session_start = time.perf_counter()
        if self.config.resume:
            self.restore()
        else:
            self.start_fresh()
        progress = Progress(self.config.steps, quiet=self.quiet)
        modes = int(self.rows[-1][3]) if self.rows else 0
        clock = {"steps": 0, "start": time.perf_counter(), "modes": modes}
        done = int(self.gan.step.numpy()) if self.config.resume else -1
        try:
            for target in frame_steps(self.config):
                if target > done:
                    self.train_until(target, progress, clock)
                    clock["modes"] = self.frame(target)["modes_captured"]
                    self.save_checkpoint()
        except Interrupted as stop:
            self.stop_early(diverged=stop.status == DIVERGED)
            raise
        if clock["steps"]:
            progress.update(self.config.steps, *self.progress_figures(clock), final=True)
        self.write_gif()
        return self.finish()

    def stop_early(self, diverged: bool) -> None:
        """Keep everything: a frame of the current state, a checkpoint, the GIF.

        A diverged run keeps its last finite frame and checkpoint, not NaN ones.
        """
        step = int(self.gan.step.numpy())
        if not diverged:
            if step not in frame_steps(self.config):
                self.frame(step, scheduled=False)
                self.save_checkpoint()
            save_npy(self.out / "samples.npy", self.measure()[0])
        self.write_gif()

    def finish(self) -> dict:
        samples, metrics = self.measure()
        save_npy(self.out / "samples.npy", samples)
        steps = [self.first_capture.get(k) for k in range(N_MODES)]
        summary = {
            "config": dataclasses.asdict(self.config),
            "final": metrics,
            "result": describe(metrics),
            "centres": self.centres.tolist(),
            "sigma": self.sigma,
            "steps_run": int(self.gan.step.numpy()),
            "wall_seconds": round(self.wall_seconds(), 2),
            "first_capture_step": steps,
            "last_mode_first_captured_step": None if None in steps else max(steps),
            "seconds": {k: round(v, 2) for k, v in self.timing.items()},
        }
        save_json(self.out / "summary.json", summary)
        return summary

    def outputs(self) -> list:
        names = ["vanilla_gan.gif"] if self.draw else []
        names += ["frames", "metrics.csv", "summary.json", "samples.npy", "real.npy"]
        names += ["config.json", "checkpoint"]
        return [self.out / n for n in names if (self.out / n).exists()]


# ----------------------------------------------------------------------------- study

STUDY_COLUMNS = ["seed", "modes_captured", "high_quality_pct", "reverse_kl"]
STUDY_COLUMNS += [f"mode_{k}_count" for k in range(N_MODES)]
STUDY_COLUMNS += ["missing_modes", "last_mode_first_captured_step", "wall_seconds"]


def study_row(seed: int, summary: dict) -> list:
    final = summary["final"]
    missing = " ".join(str(k) for k, c in enumerate(final["mode_counts"]) if c == 0)
    last = summary["last_mode_first_captured_step"]
    row = [seed, final["modes_captured"], f"{final['high_quality_pct']:.2f}"]
    row += [f"{final['reverse_kl']:.6f}"] + final["mode_counts"]
    return row + [missing, "" if last is None else last, summary["wall_seconds"]]


def mean_and_error(values) -> tuple:
    values = np.asarray(values, dtype=np.float64)
    error = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return float(values.mean()), float(error)


def study_summary(rows: list) -> dict:
    summary = {"seeds": len(rows)}
    summary["seeds_with_a_missing_mode"] = sum(int(r[1]) < N_MODES for r in rows)
    for column in ("modes_captured", "high_quality_pct", "reverse_kl"):
        index = STUDY_COLUMNS.index(column)
        mean, error = mean_and_error([float(r[index]) for r in rows])
        summary[column] = {"mean": mean, "standard_error": error}
    return summary


def format_study(rows: list, summary: dict) -> str:
    lines = ["seed  modes  high quality  reverse KL  missing  all seen at step"]
    for r in rows:
        lines.append(
            f"{r[0]:>4}  {r[1]:>5}  {float(r[2]):>11.2f}%  {float(r[3]):>10.4f}"
            f"  {r[9] or '-':>7}  {r[10] if r[10] != '' else '-':>16}"
        )
    n, missing = summary["seeds"], summary["seeds_with_a_missing_mode"]
    lines.append(f"at least one mode missing at the end in {missing} of {n} seeds")
    for column, label in (
        ("modes_captured", "modes captured"),
        ("high_quality_pct", "% high quality"),
        ("reverse_kl", "reverse KL"),
    ):
        m = summary[column]
        error = f"{m['standard_error']:.3f}" if n > 1 else "n/a"
        lines.append(f"{label}: {m['mean']:.3f} ± {error} (mean ± standard error)")
    return "\n".join(lines)


def run_study(config: Config, seeds: list) -> int:
    """One run per seed, each exactly the single run with that seed; rows saved as they end."""
    out = Path(config.out)
    rows: list = []
    diverged: list = []
    started = time.perf_counter()
    for number, seed in enumerate(seeds, 1):
        single = dataclasses.replace(config, seed=seed, seeds="", out=str(out / f"seed_{seed}"))
        Path(single.out).mkdir(parents=True, exist_ok=True)
        print(f"seed {seed} ({number} of {len(seeds)}) in {single.out}", flush=True)
        try:
            summary = Run(single, Path(single.out), draw=config.study_frames).execute()
        except Interrupted as stop:
            if stop.status != DIVERGED:
                print(f"\nstudy stopped during seed {seed} ({stop}); the {len(rows)} finished")
                print(f"seeds are in {out / 'study.csv'}")
                return stop.status
            print(f"seed {seed}: {stop}; left out of the averages", flush=True)
            diverged.append(seed)
        else:
            print(f"seed {seed}: {summary['result']}", flush=True)
            rows.append(study_row(seed, summary))
            save_csv(out / "study.csv", STUDY_COLUMNS, rows)
        report = {
            "config": dataclasses.asdict(config),
            "seeds": [int(r[0]) for r in rows],
            "diverged_seeds": diverged,
            "summary": study_summary(rows) if rows else None,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        save_json(out / "study.json", report)
    if rows:
        print(format_study(rows, report["summary"]))
        print(f"wrote {out / 'study.csv'} and {out / 'study.json'}")
    if diverged:
        print(f"diverged, and left out: seeds {', '.join(map(str, diverged))}")
        return DIVERGED
    return 0


# ----------------------------------------------------------------------------- command line


class UsageError(Exception):
    """Bad input: one line on stderr and exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_seeds(text: str) -> list:
    """'0-9' or '1,4,7' (or a mix, '0-3,8') as a sorted list of distinct seeds."""
    seeds: list = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if not 0 <= first <= last < 2**31:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise UsageError(
            f"argument --seeds: expected a range like 0-9 or a list like 1,4,7, got {text!r}"
        ) from None
    return sorted(set(seeds))


def number(kind, accept, wanted: str):
    """An argparse type: `kind` parsed from the text, refused unless accept(value)."""

    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return check


CHECKS = {
    "seed": number(int, lambda v: 0 <= v < 2**31, "an integer in [0, 2^31)"),
    "beta1": number(float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta2": number(float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    # A GIF stores delays in hundredths of a second, at most 655 s.
    "fps": number(float, lambda v: 0.1 <= v <= 100, "a number from 0.1 to 100"),
    "int": number(int, lambda v: v > 0, "a positive int"),
    "float": number(float, lambda v: math.isfinite(v) and v > 0, "a positive float"),
    "str": str,
}


def build_parser() -> argparse.ArgumentParser:
    """One option per Config field; its doc line is the --help text."""
    parser = Parser(
        prog="vanilla_gan.py",
        description="Train a vanilla GAN on five 2-D Gaussians and watch it collapse.",
    )
    docs = field_docs()
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        default = {"frame_every": "steps/100", "seeds": "none"}.get(field.name, field.default)
        help_text = f"{docs[field.name]} (default: {default})"
        if field.type == "bool":
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, action=action, default=None, help=help_text)
        else:
            check = CHECKS.get(field.name, CHECKS[field.type])
            parser.add_argument(
                flag, type=check, default=None, metavar=field.name.upper(), help=help_text
            )
    return parser


def field_docs() -> dict:
    """The one-line doc string under each Config field, for --help."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(Config))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body[:-1], body[1:], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr):
            docs[node.target.id] = after.value.value
    return docs


def attach_negative_numbers(argv: list) -> list:
    """'--lr -1e-4' as '--lr=-1e-4', so the value is checked (and named) as a value."""
    joined: list = []
    for token in argv:
        previous = joined[-1] if joined else ""
        if previous.startswith("--") and "=" not in previous and is_negative_number(token):
            joined[-1] += "=" + token
        else:
            joined.append(token)
    return joined


def is_negative_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.startswith("-")


def parse_config(argv: list) -> tuple:
    """The Config and the names of the options given explicitly."""
    namespace = build_parser().parse_args(attach_negative_numbers(argv))
    given = {k: v for k, v in vars(namespace).items() if v is not None}
    config = Config(**given)
    if "frame_every" in given and config.frame_every > config.steps:
        raise UsageError(
            f"argument --frame-every: {config.frame_every} is longer than the run"
            f" (--steps {config.steps})"
        )
    if config.batch_size > N_MODES * POINTS_PER_MODE:
        raise UsageError(
            f"argument --batch-size: {config.batch_size} is more than the"
            f" {N_MODES * POINTS_PER_MODE} training points"
        )
    if config.seeds:
        parse_seeds(config.seeds)
        if config.resume:
            raise UsageError("argument --resume: not available with --seeds")
    return config, set(given)


def check_out(out: str) -> Path:
    """Creates --out if needed and proves it writable, or raises UsageError."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(f"argument --out: cannot write to {out!r} ({error.strerror})") from None
    return path


def resumed_config(config: Config, given: set) -> Config:
    """The saved settings of the run in --out; a differing recipe setting is refused."""
    out = Path(config.out)
    if not (out / "config.json").exists() or not (out / "checkpoint" / "checkpoint").exists():
        raise UsageError(f"argument --resume: no checkpoint to resume in {str(out)!r}")
    saved = json.loads((out / "config.json").read_text())
    for name in RECIPE_FIELDS:
        if name in given and getattr(config, name) != saved[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"argument {flag}: {getattr(config, name)} differs from the run being"
                f" resumed ({saved[name]}); resume with the same recipe"
            )
    keep = {k: saved[k] for k in RECIPE_FIELDS}
    return dataclasses.replace(config, **keep)


def print_settings(config: Config) -> None:
    shown = "  ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items())
    print(f"settings: {shown}", flush=True)


def main(argv: list | None = None) -> int:
    try:
        config, given = parse_config(sys.argv[1:] if argv is None else argv)
        if config.resume:
            config = resumed_config(config, given)
        seeds = parse_seeds(config.seeds) if config.seeds else []
        out = check_out(config.out)
    except UsageError as error:
        print(f"vanilla_gan.py: error: {error}", file=sys.stderr)
        return 2

    previous_handlers = StopFlag.install()
    try:
        print_settings(config)
        return run_study(config, seeds) if seeds else run_single(config, out)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def run_single(config: Config, out: Path) -> int:
    run = Run(config, out)
    try:
        summary = run.execute()
    except Interrupted as stop:
        if stop.status == DIVERGED:
            print(f"\nstopped: {stop}; the outputs up to the last frame are kept:")
        else:
            print(f"\nstopped at step {int(run.gan.step.numpy()):,} ({stop}); outputs:")
        for path in run.outputs():
            print(f"  {path}")
        if stop.status != DIVERGED:
            print(f"resume with: python vanilla_gan.py --resume --out {config.out}")
        return stop.status
    for path in run.outputs():
        print(f"wrote {path}")
    print(summary["result"])
    # A signal after the last step found nothing left to stop; still, say it came.
    return 128 + StopFlag.signal_number if StopFlag.signal_number else 0


if __name__ == "__main__":
    sys.exit(main())
