"""Config: YAML → frozen dataclasses, errors naming key and file, typed overrides."""

import dataclasses
from pathlib import Path

import pytest

from datasets.metadata import DatasetMeta
from pose.config import (
    CONFIG_RANGES,
    Config,
    ConfigError,
    apply_overrides,
    load_config,
    save_config,
)
from pose.engine.checkpoint import build_model
from pose.models.complexity import count_trainable_params

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_every_shipped_config_loads_and_names_its_architecture():
    paths = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if p.parent.name != "datasets")
    # COCO: 2 widths x 2 sizes x 3 PSA variants; the demo; CrowdPose W32
    assert len(paths) == 14
    for path in paths:
        config = load_config(path)
        # the dataset metadata resolves without the data, for the model's keypoint count
        meta = DatasetMeta.from_config(config.data, num_keypoints=config.model.num_keypoints)
        assert meta.num_keypoints == config.model.num_keypoints
        stem = path.stem
        if stem.startswith("hrnet_w"):
            width, size = stem.split("_")[1:3]
            assert config.model.width == int(width[1:])
            height, crop_width = (int(s) for s in size.split("x"))
            assert config.model.input_size == (crop_width, height)
            expected_mode = {"psa_p": "parallel", "psa_s": "sequential"}.get(stem[-5:])
            assert config.model.psa_placement == ("branch" if expected_mode else "none")
            if expected_mode:
                assert config.model.psa_mode == expected_mode
            # Official experiments start from ImageNet-pretrained HRNet of the same width.
            checkpoint = {32: "hrnet_w32-36af842e.pth", 48: "hrnet_w48-8ef0771d.pth"}
            assert config.train.init_weights == f"data/pretrained/{checkpoint[int(width[1:])]}"
        else:
            assert config.train.init_weights is None  # no pretrained file fits the demo


def test_values_are_typed_and_frozen(tmp_path):
    config = load_config(_write(tmp_path, "model:\n  input_size: [288, 384]\ntrain:\n  lr: 1e-3\n"))
    assert config.model.input_size == (288, 384)
    assert config.train.lr == pytest.approx(1e-3) and isinstance(config.train.lr, float)
    assert config.train.epochs == Config().train.epochs  # unspecified keys keep defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.lr = 1.0


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = _write(tmp_path, "train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*train\.'learning_rate'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"exp\.yaml.*'optimizer'"):
        load_config(_write(tmp_path, "optimizer:\n  lr: 0.1\n"))


def test_wrong_type_names_the_key_and_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"exp\.yaml: model\.width: expected int, got 'wide'"):
        load_config(_write(tmp_path, "model:\n  width: wide\n"))
    with pytest.raises(ConfigError, match=r"model\.input_size: expected 2 values"):
        load_config(_write(tmp_path, "model:\n  input_size: [1, 2, 3]\n"))
    with pytest.raises(ConfigError, match=r"test\.flip_test: expected bool"):
        load_config(_write(tmp_path, "test:\n  flip_test: 1\n"))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        load_config(tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError, match="exp.yaml: not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed\n"))


def test_overrides_are_typed_by_the_dataclass(tmp_path):
    path = _write(tmp_path, "")
    config = load_config(path, ["train.lr=5e-4", "model.input_size=[288,384]",
                                "test.flip_test=false", "data.oks_sigmas=[0.1, 0.2]"])
    assert config.train.lr == 5e-4
    assert config.model.input_size == (288, 384)
    assert config.test.flip_test is False
    assert config.data.oks_sigmas == (0.1, 0.2)
    with pytest.raises(ConfigError, match="unknown key 'train.momentum'"):
        apply_overrides(config, ["train.momentum=0.9"])
    with pytest.raises(ConfigError, match="train.epochs.*expected int, got 'many'"):
        apply_overrides(config, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="not section.key=value"):
        apply_overrides(config, ["lr=1"])


def test_saved_config_reloads_identically_and_rebuilds_the_model(tmp_path):
    config = load_config(CONFIG_DIR / "demo" / "hrnet_small_128x96.yaml",
                         ["model.psa_mode=sequential", "model.psa_form=port"])
    save_config(config, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == config
    assert "psa_form: port" in (tmp_path / "resolved.yaml").read_text()
    assert count_trainable_params(build_model(again.model)) == \
        count_trainable_params(build_model(config.model))


def test_blocks_per_stage_and_branch_are_checked(tmp_path):
    config = load_config(_write(tmp_path, "model:\n  stage_blocks: [[1, 1], [2, 2, 2], "
                                          "[1, 1, 1, 1]]\n"))
    assert config.model.stage_blocks == ((1, 1), (2, 2, 2), (1, 1, 1, 1))
    with pytest.raises(ConfigError, match=r"exp\.yaml: model\.stage_blocks must list 2, 3 "
                                          r"and 4 positive counts"):
        load_config(_write(tmp_path, "model:\n  stage_blocks: [[1, 1], [2, 2]]\n"))
    with pytest.raises(ConfigError, match="model.stage_blocks"):
        apply_overrides(config, ["model.stage_blocks=[[1, 1], [2, 2, 0], [1, 1, 1, 1]]"])


def test_data_paths_resolve_under_the_root():
    from pose.config import DataConfig

    data = DataConfig(root="data/coco")
    assert data.resolve("annotations/a.json") == str(Path("data/coco/annotations/a.json"))
    assert data.resolve("/abs/b.json") == "/abs/b.json"


@pytest.mark.parametrize("key", sorted(CONFIG_RANGES))
def test_every_ranged_value_is_refused_just_outside_and_kept_on_its_bounds(key):
    """The range table, each entry on each side and on the value itself: the bound is
    accepted when the table allows it, the nearest values outside are refused with the
    key and range named, NaN and infinity always."""


    low, high, low_allowed = CONFIG_RANGES[key]
    section, name = key.split(".")
    integer = isinstance(low, int)
    step = 1 if integer else 1e-6
    is_tuple = name in ("oks_sigmas", "lr_steps")

    def build(value):
        value = (value,) if is_tuple else value
        cls = type(getattr(Config(), section))
        return cls(**{name: value})

    if low_allowed:
        build(low)
    else:
        with pytest.raises(ConfigError, match=f"^{key} must be .*, got {low!r}$"):
            build(low)
        build(low + step)
    with pytest.raises(ConfigError, match=f"^{key} must be "):
        build(low - step)
    if high is not None:
        build(high)
        with pytest.raises(ConfigError, match=f"^{key} must be .*\\[{low}, {high}\\]"):
            build(high + step)
    if not integer:
        for not_finite in ("nan", "inf"):
            with pytest.raises(ConfigError, match=f"^{key} must be .*, got {not_finite}$"):
                build(float(not_finite))


@pytest.mark.parametrize("key, good, bad", [("data.encoding", "udp", "heatmap"),
                                            ("test.decoding", "dark", "argmax"),
                                            ("data.missing_images", "error", "ignore")])
def test_named_choices_are_checked_when_the_config_is_read(key, good, bad):
    from pose.config import CONFIG_CHOICES, Config

    section, name = key.split(".")
    cls = type(getattr(Config(), section))
    assert getattr(cls(**{name: good}), name) == good
    with pytest.raises(ConfigError) as error:
        cls(**{name: bad})
    assert str(error.value) == (f"{key} must be one of {', '.join(CONFIG_CHOICES[key])}, "
                                f"got {bad!r}")
