"""Experiment configuration: YAML files → frozen dataclasses, one section per concern.

A config file has the sections ``model``, ``data``, ``train`` and ``test``; every key is
a field below, with its meaning and default. An unknown key, a missing section's typo or a
value of the wrong type is an error that names the key and the file. Command-line
overrides (``--set train.lr=5e-4``) are parsed as YAML scalars and typed by the field.

Builders never receive the whole tree: ``HRNet(**dataclasses.asdict(cfg.model))``,
``evaluate(model, codec, meta, cfg.test, ...)``.
"""

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field

import yaml

from datasets.transforms import Augmentation
from pose.checks import check_input_file
from pose.errors import UserError
from pose.fileio import DuplicateKeyError, load_yaml, write_text
from pose.options import CONFIG_RANGES


class ConfigError(UserError):
    """A config file or override that cannot be read as a ``Config``."""


ENCODINGS = ("standard", "udp")  # data.encoding (pose.codec's target encodings)
DECODINGS = ("quarter_offset", "dark", "udp")  # test.decoding (pose.codec's decodings)
MISSING_IMAGE_CHOICES = ("skip", "error")  # data.missing_images
CONFIG_CHOICES = {"data.encoding": ENCODINGS, "test.decoding": DECODINGS,
                  "data.missing_images": MISSING_IMAGE_CHOICES}


def _check_section(section, values):
    """Every value of ``section`` (a dataclass) with an entry in ``CONFIG_RANGES`` or
    ``CONFIG_CHOICES`` lies in it; None (an optional value left out) passes.

    Raises:
        ConfigError: naming the key, its range and the value.
    """
    for field_ in dataclasses.fields(values):
        key = f"{section}.{field_.name}"
        value = getattr(values, field_.name)
        if value is None:
            continue
        if key in CONFIG_CHOICES and value not in CONFIG_CHOICES[key]:
            raise ConfigError(f"{key} must be one of {', '.join(CONFIG_CHOICES[key])}, "
                              f"got {value!r}")
        if key not in CONFIG_RANGES:
            continue
        for item in (value if isinstance(value, tuple) else (value,)):
            CONFIG_RANGES[key].check(item, key, ConfigError)


@dataclass(frozen=True)
class ModelConfig:
    """The network; the fields are ``pose.models.hrnet.HRNet``'s arguments."""

    width: int = 32
    num_keypoints: int = 17
    input_size: tuple[int, int] = (192, 256)  # (width, height) of the crop
    psa_placement: str = "branch"  # none | branch | block
    psa_mode: str = "parallel"  # parallel | sequential
    # paper (the PSA paper's equations) | official (DeLightCMU/PSA's PSA_p/PSA_s code) |
    # port (the common Keras port); psa/layers.py tabulates how they differ.
    psa_form: str = "paper"
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    num_blocks: int = 4
    stage1_blocks: int = 4
    stem_width: int = 64
    # Basic blocks per branch of stages 2, 3, 4 (official NUM_BLOCKS), overriding
    # num_blocks: [[1, 1], [2, 2, 2], [1, 1, 1, 1]]. null: num_blocks everywhere.
    stage_blocks: typing.Optional[tuple[tuple[int, ...], ...]] = None

    def __post_init__(self):
        _check_section("model", self)
        if self.stage_blocks is not None and (
                tuple(len(counts) for counts in self.stage_blocks) != (2, 3, 4)
                or min(n for counts in self.stage_blocks for n in counts) < 1):
            raise ConfigError("model.stage_blocks must list 2, 3 and 4 positive counts "
                              f"(stages 2, 3, 4), got {self.stage_blocks!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where the COCO-format data is and how training samples are made from it."""

    root: str = "data/coco"  # dataset root; the paths below are relative to it
    train_annotations: str = "annotations/person_keypoints_train2017.json"
    train_images: str = "train2017"
    val_annotations: str = "annotations/person_keypoints_val2017.json"
    val_images: str = "val2017"
    sigma: float = 2.0  # Gaussian sigma in heatmap pixels
    encoding: str = "standard"  # standard (HRNet) | udp
    # Dataset metadata (datasets.metadata.DatasetMeta.from_config): a preset name (coco,
    # crowdpose, ochuman, aic, mpii: configs/datasets/NAME.yaml) or a metadata YAML path.
    # Names and skeleton come from the annotation file; the fields below override the
    # preset, and training fills them in, so the config beside a checkpoint carries them.
    dataset: typing.Optional[str] = None
    keypoint_names: typing.Optional[tuple[str, ...]] = None
    skeleton: typing.Optional[tuple[tuple[str, str], ...]] = None  # limbs by name
    flip_pairs: typing.Optional[tuple[tuple[str, str], ...]] = None  # None: left_/right_ names
    oks_sigmas: typing.Optional[tuple[float, ...]] = None  # None: the preset's; COCO's for 17
    # Augmentation (``datasets.transforms.Augmentation``, whose defaults are HRNet's).
    scale_factor: float = Augmentation.scale_factor
    rotation_factor: float = Augmentation.rotation_factor
    rotation_prob: float = Augmentation.rotation_prob
    flip_prob: float = Augmentation.flip_prob
    half_body_prob: float = Augmentation.half_body_prob
    half_body_min_joints: int = Augmentation.half_body_min_joints
    missing_images: str = "skip"  # skip | error
    # Decoded training images kept in memory up to this many MiB (0: off). JPEG decoding is
    # most of the input pipeline's CPU time; worth it when the training images fit (the
    # demo's 1,200 640x480 images: 1.1 GB), not for COCO's 118k.
    image_cache_mib: int = 0

    def __post_init__(self):
        _check_section("data", self)

    def resolve(self, relative):
        """A data path of this section: absolute paths stay, others are under ``root``."""
        return relative if os.path.isabs(relative) else os.path.join(self.root, relative)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe (official HRNet COCO recipe by default)."""

    batch_size: int = 32  # per replica
    epochs: int = 210
    lr: float = 1e-3
    lr_schedule: str = "step"  # step: x lr_factor at lr_steps (HRNet) | cosine: to 0 at epochs
    lr_steps: tuple[int, ...] = (170, 200)
    lr_factor: float = 0.1
    warmup_epochs: int = 0
    seed: int = 0
    val_every: int = 10  # epochs between validation AP runs
    mixed_precision: bool = False  # float16 compute; head, loss and decoding stay float32
    ohkm_topk: typing.Optional[int] = None  # online hard keypoint mining: joints kept
    # Pretrained weights loaded by name and shape before training: a PyTorch .pth (official
    # pose, training, mmpose or ImageNet-classification HRNet) or a .keras; relative paths
    # are from the working directory. None: random initialisation.
    init_weights: typing.Optional[str] = None
    init_partial: bool = False  # leave layers of another shape fresh instead of failing

    def __post_init__(self):  # a zero batch or epoch count, a NaN rate: refused here
        _check_section("train", self)


@dataclass(frozen=True)
class TestConfig:
    """Evaluation settings (official HRNet COCO test settings by default)."""

    batch_size: int = 32
    flip_test: bool = True
    shift_heatmap: bool = True
    decoding: str = "quarter_offset"  # quarter_offset | dark | udp
    use_gt_boxes: bool = False
    detections: str = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    box_score_threshold: float = 0.0
    keypoint_score_threshold: float = 0.2
    oks_nms_threshold: float = 0.9
    soft_nms: bool = False

    def __post_init__(self):
        _check_section("test", self)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)


def load_config(path, overrides=()):
    """Read a YAML config file and apply ``section.key=value`` overrides.

    Args:
        path: str or PathLike, the YAML file.
        overrides: iterable of str, each ``section.key=value`` with a YAML scalar or list
            value (``train.lr=5e-4``, ``model.input_size=[288,384]``).

    Returns:
        A frozen ``Config``.

    Raises:
        ConfigError: naming the file and the key for an unreadable file, an unknown
            section or key, or a value of the wrong type.
    """
    path = os.fspath(path)
    try:
        check_input_file(path, "config file")
        with open(path, encoding="utf-8") as f:
            tree = load_yaml(f, path)
    except UserError as e:
        raise ConfigError(str(e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    except DuplicateKeyError as e:
        raise ConfigError(str(e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(tree).__name__}")
    config = _build(Config, tree, path, prefix="")
    return apply_overrides(config, overrides, source=path)


def apply_overrides(config, overrides, source="--set"):
    """Return ``config`` with ``section.key=value`` strings applied, typed by the field."""
    for override in overrides:
        key, sep, text = override.partition("=")
        section_name, dot, field_name = key.strip().partition(".")
        if not sep or not dot or not field_name:
            raise ConfigError(f"override {override!r} (for {source}) is not section.key=value")
        section = _get_section(config, section_name, f"override {override!r} for {source}")
        fields = {f.name: f for f in dataclasses.fields(section)}
        if field_name not in fields:
            raise ConfigError(f"override {override!r} for {source}: unknown key "
                              f"{key.strip()!r}; known keys: {', '.join(fields)}")
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {override!r}: value is not YAML: {e}") from None
        value = _coerce(raw, fields[field_name].type, f"{key.strip()} (override for {source})")
        try:
            section = dataclasses.replace(section, **{field_name: value})
        except ConfigError as e:
            raise ConfigError(f"override {override!r} for {source}: {e}") from None
        config = dataclasses.replace(config, **{section_name: section})
    return config


def config_path_for(checkpoint_path):
    """``run/best.keras`` → ``run/best.yaml`` (``m.tflite`` → ``m.yaml``): where the config
    of a checkpoint or export lives."""
    root, _ = os.path.splitext(os.fspath(checkpoint_path).rstrip("/\\"))
    return root + ".yaml"


def resolve_config(config_path, saved_config, overrides=(), source="checkpoint"):
    """The config a tool runs a checkpoint with: ``config_path`` when given, else the
    config saved beside the checkpoint (``saved_config``), with ``overrides`` applied.

    Raises:
        ConfigError: when neither exists, naming ``source``.
    """
    if config_path:
        return load_config(config_path, overrides)
    if saved_config is None:
        raise ConfigError(f"{source} has no config beside it; pass --config")
    return apply_overrides(saved_config, overrides, source=source)


def config_to_dict(config):
    """A plain dict of YAML-friendly values (tuples become lists)."""
    def plain(value):
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value
    return {section.name: {k: plain(v) for k, v in
                           dataclasses.asdict(getattr(config, section.name)).items()}
            for section in dataclasses.fields(config)}


def save_config(config, path):
    """Write the resolved config as YAML, atomically (a crash leaves no partial file)."""
    write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), path)


def _get_section(config, name, where):
    names = [f.name for f in dataclasses.fields(config)]
    if name not in names:
        raise ConfigError(f"{where}: unknown section {name!r}; known sections: "
                          f"{', '.join(names)}")
    return getattr(config, name)


def _build(cls, tree, path, prefix):
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: section {prefix.rstrip('.')!r} must be a mapping, "
                          f"got {tree!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(tree) - set(fields))
    if unknown:
        kind = "section" if not prefix else "key"
        raise ConfigError(f"{path}: unknown {kind} {prefix}{unknown[0]!r}; known: "
                          f"{', '.join(fields)}")
    values = {}
    for name, value in tree.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value if value is not None else {}, path,
                                  prefix=f"{name}.")
        else:
            values[name] = _coerce(value, hint, f"{path}: {prefix}{name}")
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _coerce(value, hint, where):
    """Check ``value`` against the type hint, converting lists to tuples and ints to floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(value, inner, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
