"""The tiny HRNet's exports, each made once per test session (``tiny_exports`` in
``tests/conftest.py``).

A TFLite conversion of even the tiny model costs ~10 s and an ONNX export a few; several
modules (``tests/pose/apis/test_export.py``, ``test_runtimes.py``,
``tests/pose/experiments/test_demo.py``) need the same export of the same model. Under
``make test`` (``pytest -n 2``) the session is one xdist worker's, so an export is made at
most once per worker.
"""

from functools import cached_property

from tests.conftest import TINY_HRNET, randomize_weights


class TinyExports:
    """The tiny HRNet (branch PSA, He-normal weights of ``SEED``), its config, generated
    calibration crops, and its exports made on first request.

    ``path(fmt, quantize=None)`` is the export's path, with the config beside it
    (``NAME.yaml``, as ``tools/export.py`` writes it), so that ``load_network`` and
    ``tools/infer.py`` take it. The files are shared: a test that changes one copies it
    first. The model is shared too: a test that changes weights builds its own.
    """

    SEED = 1

    def __init__(self, folder, synthetic_coco):
        # bound now: tests answer a tool's export_model call with these files by
        # monkeypatching pose.apis.export.export_model
        from pose.apis.export import export_model

        self._export_model = export_model
        self.folder = folder
        self._synthetic_coco = synthetic_coco
        self._made = {}

    @cached_property
    def config(self):
        from pose.config import Config, ModelConfig, TestConfig

        return Config(model=ModelConfig(psa_placement="branch", **TINY_HRNET),
                      test=TestConfig(batch_size=4))

    @cached_property
    def model(self):
        from pose.engine.checkpoint import build_model

        model = build_model(self.config.model)
        randomize_weights(model, self.SEED)
        return model

    @cached_property
    def crops(self):
        """Generated-data crops through the evaluation pipeline: (40 calibration, 20 held
        out)."""
        from pose.apis.export import calibration_crops

        root = self._synthetic_coco
        crops = calibration_crops(root / "annotations" / "person_keypoints_train2017.json",
                                  root / "train2017", (32, 64), count=60, seed=0)
        return crops[:40], crops[40:]

    def path(self, fmt, quantize=None):
        """The export of ``model`` to ``fmt`` (``saved_model``, ``tflite``, ``onnx``)
        quantized as asked (int8 calibrated on ``crops[0]``), made on the first call."""
        if (fmt, quantize) not in self._made:
            from pose.config import config_path_for, save_config

            name = {"saved_model": "sm", "tflite": "m.tflite", "onnx": "m.onnx"}[fmt]
            path = self._export_model(
                self.model, self.folder / f"{quantize or 'float32'}_{name}", fmt,
                quantize=quantize, calibration=self.crops[0] if quantize == "int8" else None)
            save_config(self.config, config_path_for(path))
            self._made[fmt, quantize] = path
        return self._made[fmt, quantize]
