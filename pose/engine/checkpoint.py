"""Build a model from its config, and save/load checkpoints that rebuild themselves.

A checkpoint is ``NAME.keras`` (the Keras archive: architecture, weights, optimizer) with
the resolved experiment config beside it as ``NAME.yaml``, so that evaluation and
inference read the same codec and test settings the model was trained with. Both files
are written to a temporary name and renamed into place, so a crash mid-save never leaves
a broken file where a good one was.
"""

import dataclasses
import os

import keras

from pose.config import ConfigError, config_path_for, load_config, save_config
from pose.fileio import save_keras
from pose.models.hrnet import HRNet


def build_model(model_config):
    """An ``HRNet`` from a ``ModelConfig`` (or any object with its fields)."""
    return HRNet(**dataclasses.asdict(model_config))


def save_model(model, path, config=None):
    """Save ``model`` to ``path`` (a ``.keras`` file) and ``config`` beside it, atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"checkpoint path must end in .keras, got {path!r}")
    if config is not None:
        save_config(config, config_path_for(path))
    save_keras(model, path)


def load_model(path, compile=False):
    """Load a ``.keras`` checkpoint and its config.

    Returns:
        ``(model, config)``; ``config`` is None when no ``NAME.yaml`` lies beside it.

    Raises:
        FileNotFoundError naming the path; ``ConfigError`` when the config beside it is bad.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    config_path = config_path_for(path)
    config = load_config(config_path) if os.path.isfile(config_path) else None
    if config is not None and dataclasses.asdict(config.model) != _model_fields(model):
        raise ConfigError(f"{config_path}: model section does not match the architecture "
                          f"stored in {path}")
    return model, config


def _model_fields(model):
    fields = dict(model.get_config())
    fields.pop("name", None)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
