"""Forward-pass latency, tracing time and peak memory of a pose model on this machine.

Runtime settings that TensorFlow reads once per process (oneDNN, thread pools) cannot be
changed after start-up, so ``tools/benchmark.py`` runs each setting in a fresh
subprocess that calls ``measure_model`` and prints one JSON line.

Runners:
    predict_on_batch: Keras's own inference entry point (``model.predict_on_batch``).
    tf_function: the model called inside one ``tf.function`` traced per batch shape.
    xla: the same with ``jit_compile=True``.
"""

import dataclasses
import os
import resource
import statistics
import time

import numpy as np

RUNNERS = ("predict_on_batch", "tf_function", "xla")


@dataclasses.dataclass
class LatencyResult:
    batch_size: int
    first_call_s: float  # tracing + first execution, what a user waits for once
    median_s: float
    min_s: float
    repeats: int


def configure_threads(intra_op, inter_op):
    """Set TensorFlow's thread pools; must run before TensorFlow executes anything."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def make_forward(model, runner):
    """A callable image batch → heatmaps for the given runner (see module docstring)."""
    if runner == "predict_on_batch":
        return model.predict_on_batch
    if runner in ("tf_function", "xla"):
        import tensorflow as tf

        function = tf.function(lambda x: model(x, training=False),
                               jit_compile=runner == "xla", reduce_retracing=True)
        return lambda x: function(x).numpy()
    raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")


def time_forward(forward, batch, repeats=5, warmup=1):
    """First-call time, then the median and minimum of ``repeats`` timed calls."""
    start = time.perf_counter()
    forward(batch)
    first = time.perf_counter() - start
    for _ in range(warmup):
        forward(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(batch)
        times.append(time.perf_counter() - start)
    return LatencyResult(batch_size=len(batch), first_call_s=first,
                         median_s=statistics.median(times), min_s=min(times), repeats=repeats)


def peak_memory_mib():
    """This process's peak resident memory so far (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_model(model_kwargs, batch_sizes=(1, 8), runner="predict_on_batch", repeats=5,
                  seed=0):
    """Build an ``HRNet`` and time its forward pass; returns a JSON-ready dict."""
    from pose.complexity import count_macs, count_trainable_params
    from pose.hrnet import HRNet

    start = time.perf_counter()
    model = HRNet(**model_kwargs)
    build_s = time.perf_counter() - start
    forward = make_forward(model, runner)
    width, height = model.input_size
    rng = np.random.default_rng(seed)
    results = {
        "params": count_trainable_params(model),
        "macs": count_macs(model),
        "build_s": build_s,
        "runner": runner,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }
    for batch_size in batch_sizes:
        batch = rng.normal(size=(batch_size, height, width, 3)).astype("float32")
        latency = time_forward(forward, batch, repeats=repeats)
        results[f"batch{batch_size}"] = dataclasses.asdict(latency)
    results["peak_memory_mib"] = peak_memory_mib()
    return results


@dataclasses.dataclass(frozen=True)
class RuntimeSetting:
    """Process-wide settings under which one measurement runs."""

    onednn: str = "1"  # TF_ENABLE_ONEDNN_OPTS: "0" or "1"
    intra_op: int = 2
    inter_op: int = 2
    runner: str = "predict_on_batch"

    def label(self):
        return (f"oneDNN={self.onednn} intra={self.intra_op} inter={self.inter_op} "
                f"{self.runner}")


def measure_in_subprocess(setting, model_kwargs, batch_sizes=(1, 8), repeats=5, timeout=900):
    """Run ``measure_model`` in a fresh Python with ``setting`` applied; return its dict."""
    import json
    import subprocess
    import sys

    request = {"setting": dataclasses.asdict(setting), "model": model_kwargs,
               "batch_sizes": list(batch_sizes), "repeats": repeats}
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting.onednn, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, "-m", "pose.benchmark", json.dumps(request)],
                               env=env, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {setting.label()}:\n"
                           f"{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["setting"] = dataclasses.asdict(setting)
    return result


def _worker(request_json):
    import json

    request = json.loads(request_json)
    setting = RuntimeSetting(**request["setting"])
    configure_threads(setting.intra_op, setting.inter_op)
    model_kwargs = dict(request["model"])
    model_kwargs["input_size"] = tuple(model_kwargs["input_size"])
    result = measure_model(model_kwargs, batch_sizes=request["batch_sizes"],
                           runner=setting.runner, repeats=request["repeats"])
    print(json.dumps(result))


if __name__ == "__main__":
    import sys

    _worker(sys.argv[1])
