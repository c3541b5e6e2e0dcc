"""Opening a dataset for a model: its images read in the model's channels (grey or colour), and
the super-resolution scale given to layouts that take one, checked against the model's."""
from __future__ import annotations

from ..data import DatasetError, PairedImages, open_dataset
from ..data.registry import spec
from .config import ConfigError, expand


def open_for_model(model: dict, name: str, root, split: str | None, options: dict, *, skip_bad: bool,
                   where: str) -> PairedImages:
    """open_dataset(name, root, split, **options) for the config `model` section; `where` names
    the setting in errors (e.g. "data.train" or "--dataset")."""
    scale = model["scale"]
    options = {key: expand(value) for key, value in options.items()}
    try:
        takes = spec(name).options()
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if "scale" in takes:
        given = options.setdefault("scale", scale)
        if given != scale:
            raise ConfigError(f"{where}: the dataset option scale={given!r} differs from the model's scale {scale} "
                              "(model.scale); leave it out to use the model's")
    try:
        images = open_dataset(name, expand(root), split=split, skip_bad=skip_bad, channels=model["channels"], **options)
    except TypeError as exc:  # an option the layout does not take
        raise ConfigError(f"{where}: {exc}") from None
    except DatasetError:
        raise
    except ValueError as exc:  # a bad option value (sigma=-5, scale=5), split or channels
        raise ConfigError(f"{where}: {exc}") from None
    if images.scale != scale:
        raise ConfigError(f"{where}: {name} pairs images at scale {images.scale}, but the model's is {scale} "
                          "(model.scale)")
    return images
