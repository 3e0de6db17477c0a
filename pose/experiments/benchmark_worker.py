"""The subprocess of ``pose.experiments.benchmark.measure_in_subprocess``: one measurement.

    python -m pose.experiments.benchmark_worker '{"setting": {...}, "model": {...},
                                                  "batch_sizes": [1, 8], "repeats": 5}'

Applies the request's thread settings before TensorFlow runs anything (the oneDNN switch
comes in through the environment the parent sets), measures the model with
``measure_model`` and prints the result as one JSON line on stdout: that line is the
answer the parent reads.
"""

import json
import sys

from pose.experiments.benchmark import RuntimeSetting, configure_threads, measure_model


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m pose.experiments.benchmark_worker REQUEST_JSON", file=sys.stderr)
        return 2
    request = json.loads(argv[0])
    setting = RuntimeSetting(**request["setting"])
    configure_threads(setting.intra_op, setting.inter_op)
    model_kwargs = dict(request["model"])
    model_kwargs["input_size"] = tuple(model_kwargs["input_size"])
    result = measure_model(model_kwargs, batch_sizes=request["batch_sizes"],
                           runner=setting.runner, repeats=request["repeats"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
