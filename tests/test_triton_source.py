"""The Triton kernels' source keeps to what inductor can copy.

torch.compile turns a traced Triton kernel into a generated module of its own: it copies the
kernel's source and, recursively, every @triton.jit function the kernel names directly (and
module-level constexprs), nothing else. A helper called as `module.helper(...)` is not copied,
so the generated kernel refers to a module it does not have and fails to compile on the GPU.
This test reads each kernel's source and refuses such calls, without needing a GPU."""
import ast
import importlib
import inspect
import pkgutil
import types

import pytest
import triton.language as tl
from triton.runtime.jit import KernelInterface

import taylor_fast.triton

pytestmark = pytest.mark.triton


def jit_functions():
    """(qualified name, python function) of every @triton.jit function in taylor_fast.triton."""
    found = {}
    for info in pkgutil.iter_modules(taylor_fast.triton.__path__, "taylor_fast.triton."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, KernelInterface) and inspect.isfunction(getattr(value, "fn", None)):
                if value.fn.__module__ == module.__name__:
                    found[f"{module.__name__}.{name}"] = value.fn
    return found


def module_calls(source: str, namespace: dict) -> list[str]:
    """`alias.name(...)` calls in source where alias names (in namespace) a module other than
    Triton's own (tl.*, triton.language.* are what every kernel uses)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            target = namespace.get(node.func.value.id)
            if isinstance(target, types.ModuleType) and not target.__name__.startswith("triton"):
                bad.append(f"{node.func.value.id}.{node.func.attr} (line {node.lineno})")
    return bad


def dedented_source(fn) -> str:
    lines = inspect.getsource(fn).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def test_the_kernels_were_found():
    names = jit_functions()
    assert "taylor_fast.triton.step._step_forward_kernel" in names
    assert "taylor_fast.triton.step._step_backward_kernel" in names
    assert "taylor_fast.triton._tiling.mm" in names


@pytest.mark.parametrize("name", sorted(jit_functions()))
def test_jit_functions_call_helpers_by_name(name):
    fn = jit_functions()[name]
    assert module_calls(dedented_source(fn), fn.__globals__) == [], (
        f"{name} calls a helper through a module attribute; import the helper by name so inductor's copy of the "
        "kernel includes it")


def test_the_check_sees_a_call_through_a_module():
    """The control: the check flags `_tiling.mm(...)` in a kernel's body, and not `tl.dot(...)`."""
    from taylor_fast.triton import _tiling

    source = "def kernel(a, b):\n    c = tl.dot(a, b)\n    return _tiling.mm(a, c, False)\n"
    assert module_calls(source, {"_tiling": _tiling, "tl": tl}) == ["_tiling.mm (line 3)"]


COMPILE_INDUCTORS_COPY = """
import importlib.util, json, pathlib, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from torch._inductor.codegen.wrapper import user_defined_triton_kernel_transitive_closure_source_code as closure
from taylor_fast.triton import aot, step
from taylor_fast.triton._tiling import BACKWARD_CONFIGS, FORWARD_CONFIGS

report = {}
for kind, kernel, config in (("forward", step._step_forward_kernel, FORWARD_CONFIGS[0]),
                             ("backward", step._step_backward_kernel, BACKWARD_CONFIGS[0])):
    # the module inductor would generate for a traced launch: its copy of the kernel and helpers
    path = pathlib.Path(tempfile.mkdtemp()) / f"inductor_copy_{kind}.py"
    path.write_text("import triton\\nimport triton.language as tl\\n\\n@triton.jit\\n" + closure(kernel))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    launch = aot.Launch(kind, 3, 8, "tf32", config, "expand_rest")
    _, signature, constants = aot._signature(launch)
    copy = getattr(module, kernel.fn.__name__)
    triton.compile(ASTSource(copy, signature, constexprs=constants), target=GPUTarget("cuda", 90, 32),
                   options={"num_warps": config.num_warps, "num_stages": config.num_stages})
    compiled = aot.compile_launch(launch)
    report[kind] = {"registers": compiled.registers, "shared": compiled.shared_bytes}
print(json.dumps(report))
"""


@pytest.mark.slow
def test_inductors_copy_of_each_kernel_compiles_for_sm90(tmp_path):
    """The control that matters on a GPU, run without one: the source inductor generates for a
    traced launch (torch._inductor's own closure of the kernel and the jit functions it names)
    compiles to sm_90 on its own; and so does the kernel itself through taylor_fast.triton.aot."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", COMPILE_INDUCTORS_COPY], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == {"forward", "backward"}
    assert all(0 < r["registers"] <= 255 and r["shared"] > 0 for r in report.values())
