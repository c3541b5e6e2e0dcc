"""Training configuration (BasicSR style): nested YAML on top of the paper's recipe, then flags.

Resolution order, later wins: DEFAULTS (the paper's recipe), the `base:` chain of the YAML file
(paths relative to the file that names them), the YAML file itself, then command-line overrides
(`--order 3`, `--set train.lr=5e-4`). Every key must exist in DEFAULTS (a typo is an error, not
a silently ignored setting), and values are checked for type and range.

The task (derain, deblur, denoise, sr) supplies the metric conventions of its field (and, for
super-resolution, the patch size) wherever no file or flag sets them: TASK_DEFAULTS.

Strings in dataset roots and options may use environment variables (`${TAYLOR_FAST_DATA}/GoPro`),
so the committed grid runs on any machine. Output locations (`paths.*`) are relative to the run
folder and may neither leave it nor land on the run's own files or on each other (see paths.py);
the run folder itself only comes from `--out`.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import yaml

from ..backends import MAX_ORDER
from ..data import DatasetError
from ..data.registry import applied_split, spec, unknown_options
from .paths import check_run_locations

# The paper's recipe (section 4.3): Adam 1e-3, 100 epochs, lr x0.2 at epochs 30/50/80, batch 4,
# patch 100, lam 1, order 3, G shared across orders with 32 hidden channels.
DEFAULTS = {
    "name": None,
    "task": "derain",
    "seed": 0,
    "model": {
        "backbone": "tiny",
        "backbone_options": {},
        "scale": 1,  # super-resolution factor: F's output is this many times larger than its input
        "channels": 3,  # 3: colour images; 1: grey, read and restored as one channel
        "order": 3,
        "hidden": 32,
        "shared": True,
        "activation": "relu",
        "negative_slope": 0.2,
        "backend": "auto",
    },
    "data": {
        "train": {
            "dataset": "paired",
            "root": None,
            "split": "train",
            "options": {},
            "skip_bad": False,
            "patch": 100,
            "flips": True,
            "rotations": True,
            "batch_size": 4,  # per process (per GPU), as in BasicSR
            "repeat": 1,  # passes over the image list per epoch (BasicSR's dataset_enlarge_ratio)
            "workers": 0,
        },
    },
    "train": {
        "epochs": 100,
        "iters": None,  # when set, the run length in iterations (epochs is then unused)
        "lr": 1e-3,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
        "milestones": [30, 50, 80],  # in epochs
        "gamma": 0.2,
        "lam": 1.0,
        "amp": "auto",  # auto: bf16 autocast on CUDA, off on CPU; bf16; off
        "compile": False,
        "grad_clip": None,
        "checkpoint_every": 500,  # iterations
        "deterministic": False,
    },
    "eval": {
        "channel": "y",  # deraining papers: Y of BT.601; deblurring, denoising: rgb (every channel)
        "crop_border": 0,
        "quantize": False,  # true: RGB and Y rounded to 8 bits (MATLAB on uint8); rgb: RGB only (BasicSR)
        "sets": [],  # [{label, dataset, root, split, options}] evaluated by `taylor-fast eval` without --dataset
    },
    "log": {
        "every": 10,  # iterations between scalar logs
        "images_every": 500,  # iterations between TensorBoard image grids (0: never)
        "progress": True,
    },
    "paths": {  # relative to the run folder, which they may not leave (last.ckpt, config.yaml and the lock are fixed)
        "tensorboard": "tb",
        "log": "train.log",
    },
}

# dicts whose keys are free (passed on to a backbone or a dataset reader)
_FREE = {"model.backbone_options", "data.train.options"}
# keys whose default is null: the type a non-null value must have
_NULLABLE = {"name": ("", "a string"), "data.train.root": ("", "a folder path"), "train.epochs": (1, "an integer"),
             "train.iters": (1, "an integer"), "train.grad_clip": (1.0, "a number")}
_EVAL_SET_KEYS = {"label", "dataset", "root", "split", "options"}
# what a resumed run may change: its length, logging, checkpointing, where the data lies, speed
# settings and evaluation, and the learning rate and gradient clipping (the way past a divergence,
# noted in the run's log); everything else (model, data drawn, seeds, the rest of the optimiser
# recipe) stays
RESUME_MAY_CHANGE = ("name", "train.epochs", "train.iters", "train.amp", "train.compile", "train.checkpoint_every",
                     "train.deterministic", "train.lr", "train.grad_clip", "data.train.root", "data.train.workers",
                     "data.train.skip_bad", "eval", "log", "paths")
TASKS = ("derain", "deblur", "denoise", "sr", "other")
_CHOICES = {
    "task": TASKS,
    "model.channels": (1, 3),
    "model.activation": ("relu", "leaky_relu"),
    "model.backend": ("auto", "reference", "cpu", "cuda", "triton"),
    "train.amp": ("auto", "bf16", "off"),
    "eval.channel": ("y", "rgb"),
}


# keys that take a bool or one of some strings: {key: (strings, how to say it)}
_BOOL_OR = {"eval.quantize": (("rgb",), "true, false or rgb")}

# The field's conventions per task, applied to keys no file or flag sets; a callable gets
# model.scale. Denoising: every channel (RGB, or the grey one), outputs rounded to 8 bits, no
# crop (DnCNN/KAIR). Super-resolution: Y of BT.601 with `scale` border pixels cropped, outputs
# rounded to 8 bits but Y not (BasicSR, and RDN/RCAN's MATLAB scripts on im2double images),
# training patches 48x48 at low resolution (EDSR, BasicSR).
TASK_DEFAULTS = {
    "deblur": {"eval.channel": "rgb"},
    "denoise": {"eval.channel": "rgb", "eval.quantize": True},
    "sr": {"eval.channel": "y", "eval.crop_border": lambda scale: scale, "eval.quantize": "rgb",
           "data.train.patch": lambda scale: 48 * scale},
}


class _Loader(yaml.SafeLoader):
    """yaml.safe_load, except that 1e-3 is a float (YAML 1.2) rather than the string '1e-3' (1.1)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only, no Python objects


class ConfigError(ValueError):
    """A configuration file or override is malformed; the message names the key and the file."""


def get(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _set(config: dict, key: str, value, source: str, given: set | None = None) -> None:
    parts = key.split(".")
    node, default = config, DEFAULTS
    for depth, part in enumerate(parts[:-1]):
        prefix = ".".join(parts[:depth + 1])
        if prefix in _FREE:
            node = node.setdefault(part, {})
            default = None
            continue
        if not isinstance(node.get(part), dict) or (default is not None and part not in default):
            raise ConfigError(f"{source}: unknown key {key!r} ({prefix!r} is not a section)")
        node = node[part]
        default = default[part] if default is not None else None
    if default is not None and parts[-1] not in default:
        raise ConfigError(f"{source}: unknown key {key!r}; {_known(default, '.'.join(parts[:-1]))}")
    node[parts[-1]] = value
    if given is not None:
        given.add(key)
    # the run length is either epochs or iters: setting one clears the other
    if key in ("train.iters", "train.epochs") and value is not None:
        config["train"]["epochs" if key == "train.iters" else "iters"] = None


def _known(section: dict, prefix: str) -> str:
    keys = ", ".join(f"{prefix}.{k}" if prefix else k for k in section)
    return f"known keys: {keys}"


def _merge(config: dict, update: dict, source: str, given: set, prefix: str = "") -> None:
    """Apply a nested dict of settings key by key, so every key is checked against DEFAULTS."""
    if not isinstance(update, dict):
        raise ConfigError(f"{source}: expected a mapping at {prefix or 'the top level'}, got {type(update).__name__}")
    for name, value in update.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        default = _default(key)
        if isinstance(value, dict) and isinstance(default, dict) and key not in _FREE:
            _merge(config, value, source, given, key)
        else:
            _set(config, key, copy.deepcopy(value), source, given)


def _default(key: str):
    node = DEFAULTS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _read_yaml(path: Path, chain: tuple[Path, ...]) -> list[tuple[Path, dict]]:
    """[(file, settings)] from the root of the `base:` chain down to `path`."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: `base:` chain loops back to itself ({' -> '.join(map(str, chain + (path,)))})")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        settings = _load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(settings).__name__}")
    base = settings.pop("base", None)
    if base is None:
        return [(path, settings)]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: `base:` must be a path to another YAML file, got {base!r}")
    return _read_yaml(path.parent / base, chain + (path,)) + [(path, settings)]


def complete(saved: dict) -> dict:
    """A saved config with the keys added since it was written set to their DEFAULTS (which keep
    the behaviour of the version that wrote it: e.g. model.scale 1, model.channels 3)."""
    def fill(node: dict, default: dict) -> dict:
        out = copy.deepcopy(node)
        for key, value in default.items():
            if key not in out:
                out[key] = copy.deepcopy(value)
            elif isinstance(value, dict) and isinstance(out[key], dict) and value:
                out[key] = fill(out[key], value)
        return out

    return fill(saved, DEFAULTS)


def parse_assignment(text: str, option: str = "--set", example: str = "train.lr=5e-4") -> tuple[str, object]:
    """'train.lr=5e-4' -> ('train.lr', 0.0005); the value is read as YAML (numbers, lists, null).
    `option` and `example` name the command-line option in errors."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option}: expected KEY=VALUE (e.g. {example}), got {text!r}")
    try:
        return key.strip(), _load_yaml(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{option} {text}: the value is not valid YAML: {' '.join(str(exc).split())}") from None


def _task_defaults(config: dict, given: set) -> None:
    """TASK_DEFAULTS of config's task for the keys not in `given`."""
    scale, task = config["model"]["scale"], config["task"]
    if not _type_ok(scale, 1) or not isinstance(task, str):
        return  # validate() names the bad value
    for key, value in TASK_DEFAULTS.get(task, {}).items():
        if key not in given:
            _set(config, key, value(scale) if callable(value) else value, "task defaults")


def resolve(yaml_path: Path | None = None, overrides: dict | None = None, base: dict | None = None) -> dict:
    """The checked configuration: `base` (DEFAULTS if None), the YAML chain, then `overrides`
    ({dotted key: value}); starting from DEFAULTS, the task's defaults fill what none of them set."""
    config = copy.deepcopy(DEFAULTS if base is None else base)
    given: set[str] = set()
    if yaml_path is not None:
        for source, settings in _read_yaml(Path(yaml_path), ()):
            _merge(config, settings, str(source), given)
    for key, value in (overrides or {}).items():
        _set(config, key, copy.deepcopy(value), "command line", given)
    if base is None:
        _task_defaults(config, given)
    validate(config)
    return config


def _type_ok(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _walk(config: dict, default: dict, prefix: str = ""):
    for name, value in config.items():
        key = f"{prefix}.{name}" if prefix else name
        if key in _FREE:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping, got {value!r}")
            continue
        if name not in default:
            raise ConfigError(f"unknown key {key!r}")
        if isinstance(default[name], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a section (mapping), got {value!r}")
            yield from _walk(value, default[name], key)
        else:
            yield key, value, default[name]


def validate(config: dict) -> None:
    """Raise ConfigError naming the first bad key."""
    for key, value, default in _walk(config, DEFAULTS):
        if key in _NULLABLE:
            if value is None:
                continue
            default, expected = _NULLABLE[key]
        elif key in _BOOL_OR:
            strings, expected = _BOOL_OR[key]
            if not isinstance(value, bool) and value not in strings:
                raise ConfigError(f"{key}: expected {expected}, got {value!r}")
            continue
        else:
            expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                        list: "a list"}[type(default)]
        if not _type_ok(value, default):
            raise ConfigError(f"{key}: expected {expected}, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key}: expected one of {', '.join(map(str, _CHOICES[key]))}, got {value!r}")
    _check_ranges(config)
    check_run_locations({f"paths.{key}": rel for key, rel in config["paths"].items()})


def _positive(config, *keys, zero_ok=False):
    for key in keys:
        value = get(config, key)
        if value is not None and not (value >= 0 if zero_ok else value > 0):
            raise ConfigError(f"{key}: expected a {'non-negative' if zero_ok else 'positive'} value, got {value!r}")


def _check_ranges(config: dict) -> None:
    train = config["train"]
    if (train["epochs"] is None) == (train["iters"] is None):
        raise ConfigError("train.epochs / train.iters: set exactly one of them (the other null), "
                          f"got epochs={train['epochs']!r}, iters={train['iters']!r}")
    _positive(config, "train.epochs", "train.iters", "train.lr", "train.gamma", "train.checkpoint_every",
              "train.grad_clip", "data.train.patch", "data.train.batch_size", "data.train.repeat", "log.every",
              "model.scale")
    _positive(config, "model.hidden")
    _positive(config, "seed", "model.order", "train.weight_decay", "train.lam", "data.train.workers",
              "log.images_every", "eval.crop_border", zero_ok=True)
    if config["model"]["order"] > MAX_ORDER:
        raise ConfigError(f"model.order: expected 0..{MAX_ORDER}, got {config['model']['order']}")
    _check_task(config)
    betas = train["betas"]
    if len(betas) != 2 or not all(_type_ok(b, 1.0) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"train.betas: expected two numbers in [0, 1), got {betas!r}")
    milestones = train["milestones"]
    if not all(_type_ok(m, 1) and m > 0 for m in milestones) or milestones != sorted(milestones):
        raise ConfigError(f"train.milestones: expected increasing positive epoch numbers, got {milestones!r}")
    for index, entry in enumerate(config["eval"]["sets"]):
        where = f"eval.sets[{index}]"
        if not isinstance(entry, dict) or not {"label", "dataset"} <= set(entry) or set(entry) - _EVAL_SET_KEYS:
            raise ConfigError(f"{where}: expected a mapping with label and dataset (and optionally root, split, "
                              f"options), got {entry!r}")
        if not isinstance(entry["label"], str) or not entry["label"] or "/" in entry["label"] or entry["label"] in (
                ".", ".."):
            raise ConfigError(f"{where}.label: expected a plain name (it becomes a folder), got {entry['label']!r}")
        if not isinstance(entry.get("options", {}), dict):
            raise ConfigError(f"{where}.options: expected a mapping, got {entry['options']!r}")
        check_dataset(entry["dataset"], entry.get("split"), entry.get("options", {}),
                      (f"{where}.dataset", f"{where}.split", f"{where}.options"))
    data = config["data"]["train"]
    check_dataset(data["dataset"], data["split"], data["options"],
                  ("data.train.dataset", "data.train.split", "data.train.options"))


def _check_task(config: dict) -> None:
    model, scale = config["model"], config["model"]["scale"]
    if config["task"] == "sr" and scale == 1:
        raise ConfigError("model.scale: task sr needs the super-resolution factor (2, 3 or 4), got 1")
    if scale > 1 and config["task"] not in ("sr", "other"):
        raise ConfigError(f"model.scale: {scale} upscales, which is task sr, but task is {config['task']!r}")
    if config["data"]["train"]["patch"] % scale:
        raise ConfigError(f"data.train.patch: {config['data']['train']['patch']} is not a multiple of model.scale "
                          f"({scale}); it is the high-resolution patch (e.g. {48 * scale} for 48x48 inputs)")
    if config["eval"]["channel"] == "y" and model["channels"] != 3:
        raise ConfigError(f"eval.channel: y needs colour images, but model.channels is {model['channels']}; "
                          "use rgb (every channel: the grey one)")


def check_dataset(name, split, options: dict, labels: tuple[str, str, str]) -> None:
    """ConfigError when the dataset `name` is unknown or does not take `split` or one of `options`,
    naming the setting at fault by its label in `labels` (dataset, split, options). Read from the
    registry alone: nothing on disk is looked at yet."""
    dataset_label, split_label, options_label = labels
    try:
        if not isinstance(name, str):
            raise DatasetError(f"expected a dataset name, got {name!r}")
        spec(name)
    except DatasetError as exc:
        raise ConfigError(f"{dataset_label}: {exc}") from None
    try:
        applied_split(name, split)
    except DatasetError as exc:
        raise ConfigError(f"{split_label}: {exc}") from None
    problem = unknown_options(name, options)
    if problem:
        raise ConfigError(f"{options_label}: {problem}")


_VARIABLE = re.compile(r"\$(?:(\w+)|\{([^}]*)\})")


def expand(value, key: str = "a path"):
    """Environment variables in a path string (${VAR} or $VAR); other values unchanged. A variable
    that is unset or empty is a ConfigError naming it and `key` (the setting that uses it), not
    a literal '${VAR}' or a path that silently starts at /."""
    if not isinstance(value, str):
        return value
    for match in _VARIABLE.finditer(value):
        name = match.group(1) or match.group(2)
        if not os.environ.get(name):
            state = "is empty" if name in os.environ else "is not set"
            raise ConfigError(f"{key}: {value!r} uses the environment variable {name}, which {state}; "
                              f"export {name}=FOLDER (for datasets, the folder holding them) or give the path itself")
    return os.path.expandvars(value)


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def leaves(config: dict, prefix: str = "") -> dict:
    """{dotted key: value} of every setting (free-form sections count as one value)."""
    out = {}
    for name, value in config.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict) and key not in _FREE:
            out.update(leaves(value, key))
        else:
            out[key] = value
    return out


def resume_conflicts(saved: dict, wanted: dict) -> list[str]:
    """Settings a resumed run asks to change although a continued run must keep them."""
    old, new = leaves(saved), leaves(wanted)
    fixed = [key for key in old.keys() | new.keys()
             if not any(key == p or key.startswith(p + ".") for p in RESUME_MAY_CHANGE)]
    return sorted(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in fixed if old.get(key) != new.get(key))
