"""Checkpoints: one safetensors file whose tensors hold the weights and optimiser moments and
whose header metadata holds everything else as JSON. Loading parses JSON and raw tensor bytes
only, so a checkpoint cannot execute code (unlike pickle-based torch.save files).

Writes are atomic (atomic.replace: temporary file, fsync, rename), so a crash, kill -9 or full
disk at any moment leaves either the previous checkpoint or the new one, never a mix. A SHA-256
of the tensor bytes in the header catches files damaged after writing.

The state is a tree of dicts, lists, tuples, Counters, strings, numbers, booleans, None and
tensors; anything else is refused when saving. Each tensor is stored under its place in the tree
(`model.mapping.body.0.weight`, `optimizer.state[0].exp_avg`), so any safetensors reader finds
the weights by name:

    weights = {k.removeprefix("model."): v for k, v in safetensors.torch.load_file(path).items()
               if k.startswith("model.")}

The JSON tree names the tensor at each place, so files written with numbered tensors (t0, t1, ...,
before the names were readable) load the same way.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize

from . import atomic

FORMAT = "taylor_fast.checkpoint"
VERSION = 1
_MAPPINGS = {"dict": dict, "Counter": Counter, "OrderedDict": OrderedDict}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file and the reason."""


def _place(where: str, key) -> str:
    """The name of the item `key` of the mapping at `where` (state dicts' keys join with dots)."""
    return f"{where}.{key}" if isinstance(key, str) else f"{where}[{key!r}]"


def _encode(node, tensors: dict, where: str):
    if isinstance(node, torch.Tensor):
        name = where.removeprefix("state.")
        if name in tensors:  # a dict key with a dot can spell another place's name: keep both
            name = f"{name}#{len(tensors)}"
        tensors[name] = node.detach().to("cpu", copy=True).contiguous()  # own storage: no shared-memory views
        return {"__tensor__": name}
    if isinstance(node, dict):
        kind = type(node).__name__
        if kind not in _MAPPINGS:
            raise TypeError(f"checkpoint state at {where}: cannot store a {kind}")
        if kind == "dict" and all(isinstance(k, str) and not k.startswith("__") for k in node):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in node.items()}
        return {"__mapping__": kind,
                "items": [[_encode(k, tensors, where), _encode(v, tensors, _place(where, k))] for k, v in node.items()]}
    if isinstance(node, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(node)]}
    if isinstance(node, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(node)]
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise TypeError(f"checkpoint state at {where}: cannot store a {type(node).__name__}")


def _decode(node, tensors: dict):
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__tuple__" in node:
        return tuple(_decode(v, tensors) for v in node["__tuple__"])
    if "__mapping__" in node:
        mapping = _MAPPINGS[node["__mapping__"]]
        # through a dict: Counter(pairs) would count the pairs instead of taking them as items
        return mapping({_decode(k, tensors): _decode(v, tensors) for k, v in node["items"]})
    return {k: _decode(v, tensors) for k, v in node.items()}


def _digest(tensors: dict) -> str:
    sha = hashlib.sha256()
    for name in sorted(tensors):
        sha.update(name.encode())
        sha.update(tensors[name].reshape(-1).view(torch.uint8).numpy().data)
    return sha.hexdigest()


def save(path, state: dict) -> None:
    """Write `state` to `path` atomically; on failure the previous file at `path` is untouched."""
    path = Path(path)
    tensors: dict = {}
    tree = _encode(state, tensors, "state")
    metadata = {"format": FORMAT, "version": str(VERSION), "state": json.dumps(tree), "sha256": _digest(tensors)}
    try:
        atomic.replace(path, serialize(tensors, metadata=metadata))
    except OSError as exc:
        raise CheckpointError(atomic.failure(path, exc, "checkpoint")) from exc


def load(path) -> dict:
    """The state saved by save(); CheckpointError says why a file cannot be used."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give the checkpoint file itself (a run folder holds "
                              "last.ckpt)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    try:
        with safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} ({size} bytes) is truncated or not a checkpoint: {exc}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a taylor_fast checkpoint "
                              f"(no '{FORMAT}' format marker)")
    if int(metadata.get("version", "0")) > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {metadata['version']}; this taylor_fast "
                              f"reads up to {VERSION}: upgrade taylor_fast")
    if _digest(tensors) != metadata.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is damaged: its tensor data does not match the recorded SHA-256")
    try:
        return _decode(json.loads(metadata["state"]), tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} has a malformed state record: {exc}") from None
