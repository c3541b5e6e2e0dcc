"""Opening a dataset for a model: its images read in the model's channels (grey or colour), and
the super-resolution scale given to layouts that take one, checked against the model's."""
from __future__ import annotations

from ..data import DatasetError, PairedImages, open_dataset
from ..data.registry import spec
from .config import ConfigError, expand


def open_for_model(model: dict, name: str, root, split: str | None, options: dict, *, skip_bad: bool,
                   skip_hint: str, keys: tuple[str, str, str]) -> PairedImages:
    """open_dataset(name, root, split, **options) for the config `model` section. `keys` name the
    settings of the dataset, its root and its options in errors (e.g. "data.train.dataset",
    "data.train.root", "data.train.options"), and `skip_hint` how the user skips bad pairs."""
    dataset_key, root_key, options_key = keys
    scale = model["scale"]
    options = {key: expand(value, f"{options_key}.{key}") for key, value in options.items()}
    try:
        takes = spec(name).options()
    except DatasetError as exc:
        raise ConfigError(f"{dataset_key}: {exc}") from None
    if "scale" in takes:
        given = options.setdefault("scale", scale)
        if given != scale:
            raise ConfigError(f"{options_key}: the dataset option scale={given!r} differs from the model's scale "
                              f"{scale} (model.scale); leave it out to use the model's")
    try:
        images = open_dataset(name, expand(root, root_key), split=split, skip_bad=skip_bad, skip_hint=skip_hint,
                              channels=model["channels"], **options)
    except TypeError as exc:  # an option the layout does not take
        raise ConfigError(f"{options_key}: {exc}") from None
    except DatasetError:
        raise
    except ValueError as exc:  # a bad option value (sigma=-5, scale=5), or a grey set for a colour model
        raise ConfigError(f"{dataset_key}: {exc}") from None
    if images.scale != scale:
        raise ConfigError(f"{dataset_key}: {name} pairs images at scale {images.scale}, but the model's is {scale} "
                          "(model.scale)")
    return images
