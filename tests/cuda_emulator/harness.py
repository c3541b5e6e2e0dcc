"""Builds and drives the host emulator of the CUDA kernels (emulator.cpp, platform.h).

The emulator is compiled with g++ and AddressSanitizer/UBSan once per source version into
build/cuda_emulator/<hash>/ and run as a subprocess on tensors written to a temp folder.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SOURCES = [
    HERE / "emulator.cpp",
    HERE / "platform.h",
    ROOT / "csrc" / "cuda" / "step_kernels.cuh",
    ROOT / "csrc" / "cuda" / "step_kernels_mma.cuh",
    ROOT / "csrc" / "cuda" / "step_params.h",
    ROOT / "csrc" / "cuda" / "step_plan.h",
    ROOT / "csrc" / "cuda" / "step_plan.cpp",
    ROOT / "csrc" / "step_math.h",
]
FLAGS = ["-std=c++20", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-pthread", "-Wall", "-Wno-unknown-pragmas", "-Werror"]
DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.bfloat16: "bfloat16"}


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def build() -> Path:
    """The emulator binary for the current sources (compiled on first use)."""
    cxx = compiler()
    digest = hashlib.sha256()
    for src in SOURCES:
        digest.update(src.read_bytes())
    digest.update(" ".join([cxx or "", *FLAGS]).encode())
    binary = ROOT / "build" / "cuda_emulator" / digest.hexdigest()[:16] / "emulator"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        cmd = [cxx, *FLAGS, f"-I{ROOT / 'csrc'}", "-o", str(partial), str(HERE / "emulator.cpp"),
               str(ROOT / "csrc" / "cuda" / "step_plan.cpp")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building the CUDA emulator failed:\n{' '.join(cmd)}\n{proc.stderr}")
        partial.rename(binary)
    return binary


def _storage_bytes(t: torch.Tensor) -> bytes:
    """The memory of a dense tensor in storage order (NCHW or channels_last alike)."""
    assert t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last), "dense tensors only"
    flat = t.detach().as_strided((t.numel(),), (1,), t.storage_offset())
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


def _from_bytes(data: bytes, dtype: torch.dtype, like: torch.Tensor | None, shape=None) -> torch.Tensor:
    raw_dtype = torch.int16 if dtype == torch.bfloat16 else dtype
    flat = torch.frombuffer(bytearray(data), dtype=raw_dtype).view(dtype)
    if like is None:
        return flat.reshape(shape)
    return flat.as_strided(like.shape, like.stride())


def run(op: str, *, images: dict, weights, raw: dict | None = None, order: int = 0, k: int = 0,
        slope: float = 0.0, blocks: int = 1, atomic: bool = False, tensor_cores: bool = False,
        schedule: str = "forward", seed: int = 0) -> dict[str, torch.Tensor]:
    """Runs one op of the CUDA glue on CPU tensors. images: name -> (N, C, H, W) tensor of the
    call's dtype; weights: (w1, b1, w2, b2), per order when w1 is 5-D (converted to the
    accumulation type as the glue does)."""
    first = next(iter(images.values()))
    dtype = first.dtype
    acc_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    n, c, h, w = first.shape
    hidden = weights[0].shape[-4]
    per_order = weights[0].dim() == 5
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"op {op}", f"dtype {DTYPES[dtype]}", f"geometry {n} {c} {h} {w} {hidden}",
                 f"order {order}", f"k {k}", f"slope {slope!r}", f"per_order {int(per_order)}",
                 f"blocks {blocks}", f"atomic {int(atomic)}", f"tensor_cores {int(tensor_cores)}",
                 f"schedule {schedule} {seed}", f"out {tmp}"]
        for name, t in images.items():
            path = os.path.join(tmp, f"in_{name}.bin")
            Path(path).write_bytes(_storage_bytes(t))
            lines.append(f"image {name} {path} {' '.join(str(s) for s in t.stride())}")
        buffers = dict(zip(("w1", "b1", "w2", "b2"), (t.to(acc_dtype).contiguous() for t in weights)))
        buffers.update({name: t.contiguous() for name, t in (raw or {}).items()})
        for name, t in buffers.items():
            path = os.path.join(tmp, f"raw_{name}.bin")
            Path(path).write_bytes(_storage_bytes(t))
            lines.append(f"raw {name} {path}")
        spec = os.path.join(tmp, "spec.txt")
        Path(spec).write_text("\n".join(lines) + "\n")
        proc = subprocess.run([str(build()), spec], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"emulator failed ({proc.returncode}):\n{proc.stderr[-4000:]}")

        def read(name):
            return Path(tmp, f"{name}.bin").read_bytes()

        sets = order if per_order else 1
        entries = hidden * 2 * c * 9 + hidden + c * hidden * 9 + c
        like = {"g_next": "g", "acc_next": "acc", "grad_g": "g", "grad_y": "y", "out": "f", "grad_f": "f"}
        result = {}
        for name in os.listdir(tmp):
            stem = name[:-4]
            if not name.endswith(".bin") or name.startswith(("in_", "raw_")):
                continue
            if stem in like:
                result[stem] = _from_bytes(read(stem), dtype, images[like[stem]])
            elif stem == "gs":
                result[stem] = _from_bytes(read(stem), dtype, None, (order, n, c, h, w))
            elif stem == "wgrad":
                result[stem] = split_weight_grads(_from_bytes(read(stem), acc_dtype, None, (sets, entries)),
                                                  c, hidden, per_order)
        return result


def split_weight_grads(flat: torch.Tensor, c: int, hidden: int, per_order: bool):
    """(grad_w1, grad_b1, grad_w2, grad_b2) from rows laid out as csrc/cuda/step_params.h's
    WeightGradLayout: [w1 (hidden, 2C, 3, 3) | b1 | w2 (C, hidden, 3, 3) | b2]."""
    sizes = [hidden * 2 * c * 9, hidden, c * hidden * 9, c]
    shapes = [(hidden, 2 * c, 3, 3), (hidden,), (c, hidden, 3, 3), (c,)]
    parts = torch.split(flat, sizes, dim=1)
    grads = [p.reshape(flat.shape[0], *s) for p, s in zip(parts, shapes)]
    return tuple(g if per_order else g[0] for g in grads)
