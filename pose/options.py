"""The one range table of every numeric option and config value, and the argument parser
every tool uses.

``OPTION_RANGES`` (command-line options) and ``CONFIG_RANGES`` (config keys) give each
number its documented range: ``Range(low, high, low_allowed)``, where ``high`` is always
allowed, ``None`` is unbounded and a callable is worked out on this machine (threads). The
type of ``low`` says integer or real. NaN and infinities are outside every range.

``ToolArgumentParser`` checks every numeric option it parsed against ``OPTION_RANGES``
before the tool does any work: a value outside its range is a ``UserError`` naming the
option, the range and the value (``--threads must be an integer in [1, 16], got 0``), and a
numeric option without a row is a bug of the tool (``MissingRangeError``), so no option can
be added without its range. Options that name what the tool writes say so
(``add_argument(..., output="file")`` or ``output="folder"``): ``output_options`` lists
them, for the output policy of ``pose.checks`` and the generated test of every option.

Keys: ``--option`` holds for every tool; ``tool --option`` (``benchmark --images``) and
``tool subcommand --option`` for an option that means something else in one tool.
"""

import argparse
import math
import numbers
import os
import typing

from pose.errors import UserError

SEED_LIMIT = 2 ** 32 - 1  # NumPy's and TensorFlow's seeds are unsigned 32-bit


class Range(typing.NamedTuple):
    """A documented range: ``low`` (allowed when ``low_allowed``) up to ``high``."""

    low: float
    high: object = None  # a number, None (unbounded), or a callable giving the number
    low_allowed: bool = True

    @property
    def integer(self):
        return isinstance(self.low, int)

    def upper(self):
        return self.high() if callable(self.high) else self.high

    def contains(self, value):
        """Whether ``value`` (a number of the range's kind) lies in the range."""
        kind = int if self.integer else numbers.Real
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
        if not math.isfinite(value):
            return False
        high = self.upper()
        above_low = value > self.low or (value == self.low and self.low_allowed)
        return above_low and (high is None or value <= high)

    def text(self):
        """The range in words: "a positive integer", "a number in [0.0, 1.0]"."""
        kind = "integer" if self.integer else "number"
        high = self.upper()
        if high is None:
            if self.low == 0 and not self.low_allowed:
                return "a positive finite number"
            if self.low == 1 and self.low_allowed and self.integer:
                return "a positive integer"
            return (f"an integer >= {self.low}" if self.integer
                    else f"a finite number {'>=' if self.low_allowed else '>'} {self.low}")
        opening = "[" if self.low_allowed else "("
        return f"{'an' if self.integer else 'a'} {kind} in {opening}{self.low}, {high}]"

    def check(self, value, name, error=UserError):
        """``value`` when it lies in the range, else ``error`` naming ``name``."""
        if not self.contains(value):
            raise error(f"{name} must be {self.text()}, got {value!r}")
        return value


def max_threads():
    """The most runtime threads a tool accepts: 4 × the core count, at least 16. More than
    that only slows a runtime down, and thousands crash or hang some of them."""
    return max(16, 4 * (os.cpu_count() or 1))


PROBABILITY = Range(0.0, 1.0)
SEED = Range(0, SEED_LIMIT)
# Sizes in pixels of a network input or a generated image: beyond these the first batch
# alone needs more memory than these machines have (an HRNet-W32 at 2048 × 2048 holds
# about 40 GiB of activations), so the request is refused before anything is allocated.
MAX_INPUT_SIDE = 2048
MAX_IMAGE_SIDE = 8192
MAX_BATCH = 1024
MAX_COUNT = 1_000_000  # images, frames, crops a tool generates or measures in one run

OPTION_RANGES = {
    # runtimes and batches
    "--threads": Range(1, max_threads),
    "--batch-size": Range(1, MAX_BATCH),
    "--input-size": Range(1, MAX_INPUT_SIDE),  # each of W, H
    "--jobs": Range(1, max_threads),
    "--workers": Range(1, max_threads),
    # person boxes from a detector file
    "--detector-size": Range(1, MAX_INPUT_SIDE),
    "--detector-mean": Range(-1e6, 1e6),  # per channel, in the file's pixel units
    "--detector-std": Range(0.0, 1e6, False),
    "--detector-threshold": PROBABILITY,
    "--person-class": Range(0, 100_000),  # also checked against the file's classes
    "--detector-nms-iou": PROBABILITY,
    "--max-people": Range(1, 10_000),
    # keypoints, tracking, smoothing
    "--threshold": PROBABILITY,
    "--box-threshold": PROBABILITY,
    "--keypoint-threshold": PROBABILITY,
    "--track-threshold": PROBABILITY,
    "--track-min-score": PROBABILITY,
    "--track-max-age": Range(0, MAX_COUNT),  # frames; 0: forgotten at the first miss
    "--detect-every": Range(1, MAX_COUNT),
    "--smooth-min-cutoff": Range(0.0, 1e6, False),  # Hz
    "--smooth-beta": Range(0.0, 1e6),
    "--smooth-d-cutoff": Range(0.0, 1e6, False),  # Hz
    # the pose server (tools/serve.py)
    "serve --port": Range(0, 65535),  # 0: any free port
    "serve --queue": Range(1, 10_000),  # requests queued or running
    "serve --timeout": Range(0.0, 3600.0, False),  # seconds per request
    "serve --max-upload-mib": Range(1, 1024),
    "serve --stream-max-age": Range(0.0, 3600.0),  # seconds
    # export
    "--calibration-count": Range(1, MAX_COUNT),
    "--latency-calibration-count": Range(1, MAX_COUNT),
    "--tolerance": Range(0.0, 1e6, False),
    # experiments and seeds
    "--seed": SEED,
    "--bootstrap-seed": SEED,
    "--seeds": Range(1, 100),  # training seeds per variant
    "--resamples": Range(1, 1_000_000),  # and the memory check of pose.evaluation.bootstrap
    "--repeats": Range(1, 10_000),
    "--rounds": Range(1, 10_000),
    "--epochs": Range(1, 10_000),
    "--frames": Range(1, MAX_COUNT),
    "--people": Range(1, 1_000),
    # generated datasets
    "make_synthetic_coco --train": Range(0, MAX_COUNT),
    "make_synthetic_coco --val": Range(0, MAX_COUNT),
    "make_synthetic_coco --width": Range(64, MAX_IMAGE_SIDE),  # room for a person
    "make_synthetic_coco --height": Range(64, MAX_IMAGE_SIDE),
    "--people-per-image": Range(0.0, 100.0),
    "--empty-image-rate": PROBABILITY,
    "--false-positives-per-image": Range(0.0, 100.0),
    "--jpeg-quality": Range(1, 100),
    "demo --train": Range(1, MAX_COUNT),
    "demo --val": Range(1, MAX_COUNT),
    # benchmarks
    "benchmark_pipeline --images": Range(1, MAX_COUNT),
    "benchmark_pipeline --image-size": Range(1, MAX_IMAGE_SIDE),
    "benchmark_pipeline --heatmap-size": Range(1, MAX_INPUT_SIDE),
    "benchmark --images": Range(1, MAX_COUNT),
    "benchmark model --width": Range(1, 1024),  # HRNet width (18, 32, 48, ...)
    "benchmark model --intra": Range(0, max_threads),  # 0: TensorFlow's default
    "benchmark model --inter": Range(0, max_threads),
    "benchmark detector-input --size": Range(32, MAX_INPUT_SIDE),
    "benchmark serve --clients": Range(1, 1024),
    "benchmark serve --seconds": Range(0.0, 3600.0, False),
    # batch extraction on Ray (tools/extract.py)
    "extract --actors": Range(1, 100_000),  # per actor pool, over a whole cluster
    "extract --num-cpus": Range(1, max_threads),  # of the local Ray
    "extract --object-store-memory": Range(78_643_200, 2 ** 50),  # bytes; Ray's least: 75 MiB
    "extract --shard-size": Range(1, MAX_COUNT),
    "extract --frames-per-task": Range(1, MAX_COUNT),
    "extract --images-per-task": Range(1, MAX_BATCH),
}

# The documented range of every numeric config value: key → Range, checked with the types
# when a section is built, so no run starts from a value outside its range. (model.* values
# are HRNet's arguments, checked by HRNet itself before anything is written.)
CONFIG_RANGES = {
    "data.sigma": Range(0.0, None, False),
    "data.scale_factor": Range(0.0, 0.99),  # scale drawn in [1 - f, 1 + f]: f < 1
    "data.rotation_factor": Range(0.0, 180.0),  # degrees
    "data.rotation_prob": PROBABILITY,
    "data.flip_prob": PROBABILITY,
    "data.half_body_prob": PROBABILITY,
    "data.half_body_min_joints": Range(0),
    "data.oks_sigmas": Range(0.0, None, False),  # each sigma
    "data.image_cache_mib": Range(0),
    "train.batch_size": Range(1, MAX_BATCH),
    "train.epochs": Range(1, 10_000),
    "train.lr": Range(0.0, None, False),
    "train.lr_steps": Range(0),  # each epoch
    "train.lr_factor": Range(0.0, None, False),
    "train.warmup_epochs": Range(0),
    "train.seed": SEED,
    "train.val_every": Range(1),
    "train.ohkm_topk": Range(1),
    "test.batch_size": Range(1, MAX_BATCH),
    "test.box_score_threshold": PROBABILITY,
    "test.keypoint_score_threshold": PROBABILITY,
    "test.oks_nms_threshold": PROBABILITY,
}


class MissingRangeError(RuntimeError):
    """A numeric option without a row in ``OPTION_RANGES``: a bug of the tool."""


def _tool_words(prog):
    """``"tools/benchmark.py model"`` → ``["benchmark", "model"]``."""
    words = prog.split()
    return [os.path.splitext(os.path.basename(words[0]))[0], *words[1:]] if words else []


def option_range(prog, option):
    """The ``Range`` of ``option`` in the tool named by ``prog`` (most specific key
    first), or None."""
    words = _tool_words(prog)
    for n in range(len(words), -1, -1):
        key = " ".join([*words[:n], option])
        if key in OPTION_RANGES:
            return OPTION_RANGES[key]
    return None


def is_numeric(action):
    return action.type in (int, float)


def output_options(parser):
    """``{dest: "file" | "folder"}`` of the options that name what the tool writes."""
    return {a.dest: a.output for a in parser._actions if getattr(a, "output", None)}


class ToolArgumentParser(argparse.ArgumentParser):
    """The argument parser of every tool: its mistakes are ``UserError``s (one line
    ``error: ...`` with exit code 2 from ``run_tool``, instead of argparse's usage block;
    ``--help`` still shows it), and every numeric option is checked against
    ``OPTION_RANGES`` before the tool sees it.

    ``tool="train"`` names the tool (``prog`` becomes ``tools/train.py``, the key of its
    own rows in the range table). ``add_argument(..., output="file"|"folder")`` declares
    an output.
    """

    def __init__(self, *args, tool=None, **kwargs):
        if tool is not None:
            kwargs.setdefault("prog", f"tools/{tool}.py")
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, output=None, **kwargs):
        _require_range(self.prog, args, kwargs, output)
        action = super().add_argument(*args, **kwargs)
        action.output = output
        return action

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        _wrap_group(group, self.prog)
        return group

    def add_mutually_exclusive_group(self, *args, **kwargs):
        group = super().add_mutually_exclusive_group(*args, **kwargs)
        _wrap_group(group, self.prog)
        return group

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")

    def parse_known_args(self, args=None, namespace=None):
        for arg in (args or []):
            if "\x00" in str(arg):  # no shell can pass one; a path with it cannot be opened
                raise UserError(f"argument {str(arg)!r} holds a NUL character")
        namespace, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            if not is_numeric(action):
                continue
            value = getattr(namespace, action.dest, None)
            if value is None:
                continue  # an optional value left out
            name = action.option_strings[0] if action.option_strings else action.dest
            bounds = option_range(self.prog, name)
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                bounds.check(item, name)
        return namespace, extras


def _require_range(prog, names, kwargs, output):
    """Refuse a numeric option without a row in the range table, and an unknown
    ``output`` kind, before the option is added."""
    if output not in (None, "file", "folder"):
        raise ValueError(f"output must be 'file' or 'folder', got {output!r}")
    if kwargs.get("type") in (int, float) and names:
        if option_range(prog, names[0]) is None:
            raise MissingRangeError(f"{prog}: option {names[0]} has no row in "
                                    "pose.options.OPTION_RANGES")


def _wrap_group(group, prog):
    """Give an argument group the parser's ``add_argument`` (output, range rows)."""
    plain = group.add_argument

    def add_argument(*args, output=None, **kwargs):
        _require_range(prog, args, kwargs, output)
        action = plain(*args, **kwargs)
        action.output = output
        return action

    group.add_argument = add_argument


RUNTIMES = ("auto", "keras", "litert", "onnx")
WEIGHTS_HELP = ("a .keras checkpoint, a PyTorch HRNet .pth (official model zoo, mmpose), or "
                "an export of tools/export.py (.tflite, .onnx: fast start-up without "
                "TensorFlow; SavedModel folder)")


def add_model_arguments(parser, weights_help=WEIGHTS_HELP, threads=True, batching=True):
    """The pose model's options, the same in every tool that runs one (tools/infer.py,
    serve.py, extract.py): ``--weights --runtime [--threads] --input-size --config --set
    --no-flip --batch-size [--batching]``. ``threads=False`` for a tool that declares its
    own ``--threads`` (extract: per actor); ``batching=False`` where batches are always
    one request's crops (serve)."""
    parser.add_argument("--weights", required=True, help=weights_help)
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="what runs --weights: auto (default) picks the format's runtime "
                             "(.keras/.pth/SavedModel: keras, .tflite: litert, .onnx: onnx)")
    if threads:
        parser.add_argument("--threads", type=int,
                            help="runtime threads (default: the core count)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="input size of a .pth model (default: from its file name, e.g. "
                             "..._256x192.pth is 192 256)")
    parser.add_argument("--config", help="YAML config (default: the one beside --weights)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test")
    parser.add_argument("--batch-size", type=int,
                        help="crops per model call (default: test.batch_size of the config)")
    if batching:
        parser.add_argument("--batching", choices=["dynamic", "padded"], default="dynamic",
                            help="dynamic: one trace for any batch size, no padding "
                                 "(default); padded: every batch zero-padded to --batch-size")
