"""Shared fixtures: the test data folders of ``tests/data`` (real COCO sample, official HRNet
checkpoints, PSA reference outputs), tiny model settings and weights, a generated COCO-format
data set."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The test data is part of the repository (tests/data/README.md says where each file is from).
TEST_DATA_DIR = REPO_ROOT / "tests" / "data"

# Small enough to build in about a second; still four stages, every fusion path, PSA.
# Input sides must divide by 32 (stem x4, three branch halvings), hence 64x32.
TINY_HRNET = dict(width=8, num_keypoints=17, input_size=(32, 64), stage_modules=(1, 1, 1),
                  num_blocks=1, stage1_blocks=1, stem_width=16)


def _data_dir(name, marker):
    """A folder of ``tests/data``. Its absence fails the test instead of skipping it: the data
    is committed, so a missing file is a broken checkout, never a reason to test less."""
    folder = TEST_DATA_DIR / name
    if not (folder / marker).is_file():
        pytest.fail(f"{folder / marker} is missing: the test data is part of the repository "
                    "(tests/data/README.md); restore it from git", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def repo_root():
    """The repository's root folder (for running ``tools/*.py`` and reading ``configs/``)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def coco_sample_dir():
    """``tests/data/coco_sample`` (4 COCO val2017 images, their annotations, detector boxes)."""
    return _data_dir("coco_sample", "person_keypoints_sample.json")


@pytest.fixture(scope="session")
def official_hrnet_dir():
    """``tests/data/official_hrnet`` (tiny official HRNet checkpoints and their outputs)."""
    return _data_dir("official_hrnet", "io.npz")


@pytest.fixture(scope="session")
def psa_reference_dir():
    """``tests/data/psa_reference`` (official PSA modules, the Keras port's formulation, and
    their outputs)."""
    return _data_dir("psa_reference", "psa_official_io.npz")


@pytest.fixture(scope="session")
def tiny_hrnet():
    """``HRNet``/``ModelConfig`` keyword arguments of the tiny test network (a fresh dict)."""
    return dict(TINY_HRNET)


@pytest.fixture(scope="session")
def built_hrnet():
    """``built_hrnet(**kwargs)``: ``HRNet(**kwargs)`` built once per session for each
    distinct set of arguments (defaults filled in), for tests that read its structure
    (layers, weight shapes, counts): a full-depth network takes seconds to build, W32 or
    W8 alike. Shared: a test that changes its weights builds its own."""
    import inspect

    from pose.models.hrnet import HRNet

    signature = inspect.signature(HRNet.__init__)
    built = {}

    def frozen(value):
        return tuple(map(frozen, value)) if isinstance(value, (list, tuple)) else value

    def get(**kwargs):
        bound = signature.bind(None, **kwargs)
        bound.apply_defaults()
        key = tuple((k, frozen(v)) for k, v in bound.arguments.items() if k != "self")
        if key not in built:
            built[key] = HRNet(**kwargs)
        return built[key]
    return get


def randomize_weights(model, seed=0):
    """He-normal kernels: a fresh HRNet's final layer (std 0.001) outputs ~1e-11, which
    would make every score 0 and every comparison of outputs trivially true.

    Every weight of rank >= 2 is drawn here: the convolution kernels and PSA's projection
    matrices (``wq``/``wv``/``wz``), so that the same seed gives the same model in every
    process (Keras' own initializers are unseeded)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if len(w.shape) >= 2:
            fan_in = int(np.prod(w.shape[:-1]))
            gain = 0.03 if w.path.startswith("final_layer") else 1.0  # heatmaps ~0..1
            w.assign(rng.standard_normal(w.shape).astype("float32")
                     * (gain * np.sqrt(2.0 / fan_in)))


@pytest.fixture(scope="session")
def randomized():
    """``randomized(model, seed=0)``: give ``model`` He-normal kernels (see
    ``randomize_weights``) and return it."""
    def apply(model, seed=0):
        randomize_weights(model, seed)
        return model
    return apply


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory):
    """A small generated COCO-format set (40 train, 6 val images at 320x240), made once."""
    from datasets.synthetic import generate_coco

    root = tmp_path_factory.mktemp("synthetic_coco")
    generate_coco(root, num_train=40, num_val=6, seed=3, image_size=(320, 240))
    return root


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory, synthetic_coco):
    """The tiny HRNet (branch PSA, seed 1), its config, calibration crops, and its exports,
    each made once: ``tiny_exports.path("tflite", quantize=None)`` (``tests/shared_exports.py``).
    A test that changes a file copies it first."""
    from tests.shared_exports import TinyExports

    return TinyExports(tmp_path_factory.mktemp("tiny_exports"), synthetic_coco)


@pytest.fixture(scope="session")
def tiny_config(synthetic_coco):
    """A ``Config`` for the tiny model on the generated set: short, fast training."""
    from pose.config import Config, DataConfig, ModelConfig, TestConfig, TrainConfig

    return Config(
        model=ModelConfig(psa_placement="branch", **TINY_HRNET),
        data=DataConfig(root=str(synthetic_coco), sigma=1.0),
        train=TrainConfig(batch_size=8, epochs=1, lr=1e-3, lr_steps=(5,), val_every=1),
        test=TestConfig(batch_size=16,
                        detections="annotations/person_detection_results_val2017.json"),
    )


# CrowdPose's 14 keypoints (configs/datasets/crowdpose.yaml); the generator derives
# "head" and "neck" from COCO's keypoints.
CROWDPOSE_NAMES = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                   "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                   "right_knee", "left_ankle", "right_ankle", "head", "neck")


@pytest.fixture(scope="session")
def crowdpose_style_coco(tmp_path_factory):
    """A generated 14-keypoint COCO-format set with CrowdPose's release quirks, made once:
    the category carries COCO's 17-keypoint skeleton and no annotation has ``area``."""
    import json

    from datasets.metadata import COCO_SKELETON_1BASED
    from datasets.synthetic import generate_coco

    root = tmp_path_factory.mktemp("crowdpose_style")
    generate_coco(root, num_train=12, num_val=4, seed=5, image_size=(160, 128),
                  keypoint_names=CROWDPOSE_NAMES, skeleton=COCO_SKELETON_1BASED)
    for split in ("train2017", "val2017"):
        path = root / "annotations" / f"person_keypoints_{split}.json"
        data = json.loads(path.read_text())
        for ann in data["annotations"]:
            del ann["area"]
        path.write_text(json.dumps(data))
    return root


@pytest.fixture(scope="session")
def crowdpose_config(crowdpose_style_coco):
    """The tiny model on ``crowdpose_style_coco`` with the crowdpose preset."""
    from pose.config import Config, DataConfig, ModelConfig, TestConfig, TrainConfig

    return Config(
        model=ModelConfig(psa_placement="none", **dict(TINY_HRNET, num_keypoints=14)),
        data=DataConfig(root=str(crowdpose_style_coco), sigma=1.0, dataset="crowdpose"),
        # 24 training people: two steps of 12
        train=TrainConfig(batch_size=12, epochs=1, lr=1e-3, lr_steps=(5,), val_every=1),
        test=TestConfig(batch_size=16,
                        detections="annotations/person_detection_results_val2017.json"),
    )


@pytest.fixture(scope="session")
def torch_checkpoint_writer():
    """``tests/checkpoint_files.py`` (``write``, ``Tensor``, ``Raw``, ``View``, opcodes): to
    write PyTorch checkpoint files of either format without torch."""
    from tests import checkpoint_files

    return checkpoint_files


# Debian's Chromium, started headless by Playwright (which downloads no browser of its own).
# The flags keep it off the network: without them it keeps trying Google's hosts, which
# this machine's closed network refuses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def chromium_or_skip():
    """The Chromium executable; its absence skips the test with the reason, or fails it under
    ``CI=true`` (CI installs the browser: ``make browser``), so that CI never tests less."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"{CHROMIUM} is missing: the browser tests need Debian's chromium (make browser)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium (a Playwright ``Browser``) for the whole session; each test opens
    its own context (``chromium.new_context()``) and closes it. Extra launch flags (a fake
    camera) need their own browser: ``launch_chromium(playwright, extra_args)``."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Test modules whose module- or package-scoped fixtures are expensive (a served model, a
# Ray cluster with an exported model) run on one xdist worker each (``--dist loadgroup``
# in ``make test``), so that the fixture is built once, not once per worker. The modules
# that use ``tiny_exports`` (or ``built_hrnet``'s full-depth networks) share one worker,
# so that each export (network) is made once.
XDIST_GROUPS = {"tests/pose/serving/": "serving", "tests/tools/test_extract_tool.py": "ray",
                "tests/pose/apis/test_export.py": "tiny_exports",
                "tests/pose/apis/test_runtimes.py": "tiny_exports",
                "tests/pose/experiments/test_demo.py": "tiny_exports",
                "tests/pose/experiments/test_runtime_benchmark.py": "tiny_exports",
                # built_hrnet's W32 and W48 networks
                "tests/pose/models/test_hrnet.py": "built_hrnet",
                "tests/pose/models/test_conversion.py": "built_hrnet"}


# tryfirst: xdist's own hook (its worker plugin, registered after this file, so called
# before it) turns the markers into the node ids' "@group" suffixes that --dist loadgroup
# schedules by; a marker added after it is ignored and the test is scheduled alone.
# pytest-xdist 3.8 writes that suffix to ``item._nodeid``, which pytest 9.2 no longer reads
# (``nodeid`` is ``str(item._id)`` there): setup.cfg's test extra keeps pytest below 9.2.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).relative_to(REPO_ROOT).as_posix()
        for prefix, group in XDIST_GROUPS.items():
            if path.startswith(prefix):
                item.add_marker(pytest.mark.xdist_group(group))
