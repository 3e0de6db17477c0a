"""Build a model from its config, and save/load checkpoints that rebuild themselves.

A checkpoint is ``NAME.keras`` (the Keras archive: architecture, weights, optimizer) with
the resolved experiment config beside it as ``NAME.yaml``, so that evaluation and
inference read the same codec and test settings the model was trained with. Both files
are written to a temporary name and renamed into place, so a crash mid-save never leaves
a broken file where a good one was.
"""

import dataclasses
import os
import zipfile

import keras

from pose.config import ConfigError, config_path_for, load_config, save_config
from pose.errors import CheckpointError
from pose.fileio import save_keras
from pose.models.hrnet import HRNet, check_arguments, weights_loaded_after


def build_model(model_config):
    """An ``HRNet`` from a ``ModelConfig`` (or any object with its fields)."""
    return HRNet(**dataclasses.asdict(model_config))


def check_model_config(model_config, source="config"):
    """Run HRNet's argument checks on a ``ModelConfig`` without building the network.

    Raises:
        ConfigError: ``"<source>: model: <what is wrong>"``.
    """
    try:
        check_arguments(**dataclasses.asdict(model_config))
    except ValueError as exc:
        raise ConfigError(f"{source}: model: {exc}") from None


def save_model(model, path, config=None):
    """Save ``model`` to ``path`` (a ``.keras`` file) and ``config`` beside it, atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"checkpoint path must end in .keras, got {path!r}")
    if config is not None:
        save_config(config, config_path_for(path))
    save_keras(model, path)


def load_model(path, compile=False, on_built=None):
    """Load a ``.keras`` checkpoint and its config.

    Args:
        path: the ``.keras`` file.
        compile: bool, restore the optimizer and loss too (Keras' ``compile``). Default
            False.
        on_built: callable or None; called with the network once it is built, before its
            weights are loaded (``pose.models.hrnet.weights_loaded_after``): inference
            traces its graph there, in a thread, while the weights load. Default None.

    Returns:
        ``(model, config)``; ``config`` is None when no ``NAME.yaml`` lies beside it.

    Raises:
        CheckpointError: naming the file, when it does not exist or is not a readable
            Keras archive (empty, truncated, another format: "corrupt checkpoint").
        ConfigError: when the config beside it is bad.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:  # Keras would say "File not found" for a file that exists
        raise CheckpointError(f"corrupt checkpoint {path}: empty file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"corrupt checkpoint {path}: not a complete Keras archive "
                              "(truncated, or another format)")
    _cache_keras_attribute_skipsets()
    try:
        with weights_loaded_after(on_built):  # no random kernels: the archive's replace them
            model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"corrupt checkpoint {path}: Keras cannot load it "
                              f"({type(exc).__name__}: {exc})") from exc
    config_path = config_path_for(path)
    config = load_config(config_path) if os.path.isfile(config_path) else None
    if config is not None and dataclasses.asdict(config.model) != _model_fields(model):
        raise ConfigError(f"{config_path}: model section does not match the architecture "
                          f"stored in {path}")
    return model, config


def _cache_keras_attribute_skipsets():
    """Let Keras' weight loading reuse its attribute skip-sets, as it means to.

    Keras 3 (3.15) caches ``saving_lib.get_attr_skipset`` under ``saving_attr_skipset_*``
    but looks it up under ``saving_attr_skiplist_*``, so ``load_model`` builds a throwaway
    ``Layer()`` for each of the ~1,100 layers of a W32 to list the attributes to skip
    (~0.4 s of CPU). Storing the same sets under the key it reads makes the lookup hit; a
    Keras without these internals (or with the bug fixed) is left alone.
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving.saving_lib import get_attr_skipset
    except ImportError:
        return
    for obj_type in ("Layer", "Functional", "Operation"):
        key = f"saving_attr_skiplist_{obj_type}"
        if global_state.get_global_attribute(key, None) is None:
            global_state.set_global_attribute(key, get_attr_skipset(obj_type))


def _model_fields(model):
    fields = dict(model.get_config())
    fields.pop("name", None)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
