"""`taylor-fast info`: what was built, with which toolchain, which backends can run here, and what
each can serve (the capability table)."""
from __future__ import annotations

import importlib.metadata
import platform

import torch

from . import __version__, backends
from .backends import extension


def _triton_version() -> str:
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    build = extension.build_info()
    info = {
        "taylor_fast": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda or "none (CPU build)",
        "triton": _triton_version(),
        "cpu_threads": torch.get_num_threads(),
        "extension": extension.status,
        "build": build,
        "cpu_isa": extension.cpu_isa(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "backends": {name: {"available": ok, "reason": why, "serves": backends.describe(backends.capability(name))}
                     for name, (ok, why) in backends().items()},
        "max_order": backends.MAX_ORDER,
    }
    if build.get("cuda_built") == "1":
        info["cuda_compiled_archs"] = [f"compute_{a // 10}" for a in extension.cuda_compiled_archs()]
    return info


def report(info: dict | None = None) -> str:
    info = info or collect()
    build = info["build"]
    lines = [
        f"taylor_fast {info['taylor_fast']}  (python {info['python']}, torch {info['torch']}, "
        f"torch CUDA {info['torch_cuda']}, triton {info['triton']})",
        f"extension   {info['extension']}",
    ]
    if build:
        cuda = (f"built with nvcc {build['cuda_compiler_version']} for {build['cuda_archs']}"
                if build["cuda_built"] == "1" else f"not built ({build['cuda_skip_reason']})")
        lines += [
            f"  built for torch {build['torch_version']} (CUDA {build['torch_cuda_version'] or 'none'}), "
            f"{build['cxx_compiler']}, C++11 ABI {build['cxx11_abi']}, {build['build_type']}",
            f"  CPU code path: {info['cpu_isa']} (runtime dispatch), {info['cpu_threads']} threads",
            f"  CUDA half: {cuda} (TAYLOR_FAST_CUDA={build['cuda_requested']})",
        ]
        if "cuda_compiled_archs" in info:
            lines.append(f"  CUDA virtual archs in the binary: {' '.join(info['cuda_compiled_archs'])}")
    lines.append(f"CUDA devices: {', '.join(info['cuda_devices']) or 'none visible'}")
    lines.append(f"backends (orders 0..{info['max_order']}):")
    for name, entry in info["backends"].items():
        mark = "yes" if entry["available"] else "no "
        lines.append(f"  {name:<10} {mark}  {entry['reason']}")
        lines.append(f"  {'':<10}      serves {entry['serves']}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def main(args) -> int:
    if args.json:
        import json

        print(json.dumps(collect(), indent=2))
    else:
        print(report())
    return 0
