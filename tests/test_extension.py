"""The native extension: what the build recorded, what `taylor-fast info` reports of it, and the
package without it."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from taylor_fast.backends import MAX_ORDER, TABLE, describe, extension


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def nvcc_present() -> bool:
    return bool(os.environ.get("CUDACXX") or os.path.exists("/usr/local/cuda/bin/nvcc") or shutil.which("nvcc"))


def test_extension_is_loaded_and_built_for_this_torch():
    assert extension.loaded(), extension.status
    info = extension.build_info()
    assert info["torch_version"] == torch.__version__
    assert info["cxx11_abi"] == str(int(torch._C._GLIBCXX_USE_CXX11_ABI))


@pytest.mark.skipif(not (nvcc_present() and torch.version.cuda), reason="no nvcc or a CPU-only torch")
def test_cuda_half_is_compiled_for_sm80_to_sm90():
    """sm_80..sm_90 (+PTX) unless the build was given its own list (recorded in the build info:
    gpu_check.sh builds for the GPU at hand only); the binary holds what the build info says."""
    info = extension.build_info()
    assert info["cuda_built"] == "1", info["cuda_skip_reason"]
    archs = info["cuda_archs"].split()
    if info["cuda_archs_from"] == "default":
        assert archs == ["sm_80", "sm_86", "sm_89", "sm_90+PTX"]
    assert extension.cuda_compiled_archs() == [int(re.match(r"sm_(\d+)", a)[1]) * 10 for a in archs]


MISSING_EXTENSION = """
import sys
sys.modules["taylor_fast._C"] = None          # makes `from . import _C` raise ImportError
import torch, taylor_fast
from taylor_fast import reference
ok, why = taylor_fast.backends()["cpu"]
net = taylor_fast.TaylorNet(taylor_fast.backbones.create("tiny"), order=3)
y = torch.rand(1, 3, 8, 8)
out, f = net.forward_terms(y)
G = net.derivative
same = torch.equal(out, reference.taylor_expand(f, y, *G.weights(), 3))
print(ok, same, "|", why)
"""


def test_package_works_without_the_extension():
    proc = run_python(MISSING_EXTENSION)
    assert proc.returncode == 0, proc.stderr
    cpu_ok, same, why = proc.stdout.replace("|", " ", 1).split(None, 2)
    assert cpu_ok == "False" and same == "True"
    assert "could not be imported" in why and "--no-build-isolation" in why


STALE_EXTENSION = """
import sys, types
stale = types.ModuleType("taylor_fast._C")
stale.build_info = lambda: {"torch_version": "2.5.0"}
sys.modules["taylor_fast._C"] = stale
import taylor_fast
print(taylor_fast.backends()["cpu"][1])
"""


def test_extension_built_for_another_torch_is_refused_with_advice():
    proc = run_python(STALE_EXTENSION)
    assert proc.returncode == 0, proc.stderr
    assert "built for torch 2.5.0" in proc.stdout and "rebuild" in proc.stdout


OLDER_SOURCES_EXTENSION = """
import sys, types, torch
older = types.ModuleType("taylor_fast._C")
older.build_info = lambda: {"torch_version": torch.__version__}
sys.modules["taylor_fast._C"] = older
import taylor_fast
print(taylor_fast.backends()["cpu"][1])
"""


def test_extension_built_from_older_sources_is_refused_with_advice():
    """An extension that does not report its kernels' limits (built before they were exported)
    would leave the capability table guessing them."""
    proc = run_python(OLDER_SOURCES_EXTENSION)
    assert proc.returncode == 0, proc.stderr
    assert "built from older sources" in proc.stdout and "rebuild" in proc.stdout


def test_info_command_reports_versions_and_backends():
    proc = subprocess.run([sys.executable, "-m", "taylor_fast", "info", "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["torch"] == torch.__version__
    assert set(info["backends"]) == {"reference", "cpu", "cuda", "triton"}
    assert info["cpu_isa"] == extension.cpu_isa() and info["max_order"] == MAX_ORDER
    assert info["backends"]["cuda"]["serves"] == describe(TABLE["cuda"])
    text = subprocess.run([sys.executable, "-m", "taylor_fast", "info"], capture_output=True, text=True,
                          timeout=300).stdout
    assert f"backends (orders 0..{MAX_ORDER}):" in text and "reference" in text
    assert f"CPU code path: {extension.cpu_isa()}" in text
    assert f"C <= {extension.limits()['cuda_max_channels']}" in text
