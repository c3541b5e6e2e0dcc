"""The child-process half of test_ops_property: build one call of a public op from a plain
description (a dict of ints, strings and tuples), run it, and report what happened.

Every call runs in its own process, forked from a forkserver that imported torch, taylor_fast
and the Triton kernels once (so a child starts in milliseconds): a crash or a hang costs that
child, not the test run, and the parent sees it as an exit signal or a timeout.

The same builder runs in the parent, which needs the very same tensors for its fp64 oracle.
"""
import contextlib
import math
import pickle
import traceback
import warnings

import torch

from backend_cases import device_of
from child_processes import forkserver_context
from taylor_fast import ops

# taylor_fast.triton: importing it decorates the kernels (in the interpreter when conftest set
# TRITON_INTERPRET); torch imports symbolic_shapes (and sympy) on a first autograd.grad and
# _dynamo on a first custom-op call: seconds that every child would otherwise pay
_CONTEXT = forkserver_context("taylor_fast", "taylor_fast.triton", "torch.fx.experimental.symbolic_shapes",
                              "torch._dynamo", "property_worker")

DTYPES = {name: getattr(torch, name) for name in (
    "float16", "bfloat16", "float32", "float64", "int32", "int64", "uint8", "bool", "complex64")}
IMAGE_NAMES = {"taylor_expand": ("f", "y"), "taylor_step": ("g", "y", "acc")}
WEIGHT_NAMES = ("w1", "b1", "w2", "b2")
# a "large" image's magnitude (a large weight is 4 times larger): order <= 3 stays inside the range
LARGE = {"float16": 30.0, "bfloat16": 1e4, "float32": 1e6, "float64": 1e12}


def order_name(op):
    return "order" if op == "taylor_expand" else "k"


def tensor_names(op):
    return IMAGE_NAMES[op] + WEIGHT_NAMES


def _shapes(case):
    """{argument: shape} before any spoil."""
    n, c, h, w = case["shape"]
    hidden, kernel = case["hidden"], case["kernel"]
    lead = (case["sets"],) if case["sets"] is not None else ()
    shapes = {name: (n, c, h, w) for name in IMAGE_NAMES[case["op"]]}
    shapes.update(w1=lead + (hidden, 2 * c, kernel, kernel), b1=lead + (hidden,),
                  w2=lead + (c, hidden, kernel, kernel), b2=lead + (c,))
    return shapes


def _values(name, shape, case, gen):
    """fp64 values: images in [0, 1); weights with G's gain about 1 (std 1/sqrt(fan-in), biases 0.1)
    so that order <= 3 stays inside float16's range; "large" scales one argument up."""
    if name in ("w1", "w2"):
        t = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(max(math.prod(shape[-3:]), 1))
    elif name in ("b1", "b2"):
        t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    else:
        t = torch.rand(shape, generator=gen, dtype=torch.float64)
    if case["large"] == name:
        t = t * (LARGE[case["dtype"]] if name not in WEIGHT_NAMES else 4.0)
    for target, fraction, value in case["nonfinite"]:
        if target == name and t.numel():
            t.view(-1)[int(fraction * t.numel())] = value
    return t


def lay_out(t, layout):
    """The same values (except "expanded", which repeats the first entry of dim 0) held with
    another memory layout."""
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "transposed" and t.dim() >= 2:
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "every_other":  # a view of every other element along the last two dims
        big = torch.zeros(*t.shape[:-2], *(2 * s for s in t.shape[-2:]), dtype=t.dtype) if t.dim() >= 2 else \
            torch.zeros(2 * t.shape[0], dtype=t.dtype)
        view = big[..., ::2, ::2] if t.dim() >= 2 else big[::2]
        view.copy_(t)
        return view
    if layout == "offset":  # a view that starts inside its storage
        flat = torch.zeros(t.numel() + 5, dtype=t.dtype)
        view = flat[5:].view(t.shape)
        view.copy_(t)
        return view
    if layout == "expanded" and t.dim() >= 1 and t.shape[0] > 0:
        return t[:1].expand(t.shape)
    return t.contiguous()


def _spoil(args, case):
    """Apply the case's one deliberate mistake (see the test's SPOILS)."""
    spoil = case["spoil"]
    if spoil is None:
        return
    kind, name, detail = spoil
    if kind in ("sets", "hidden"):  # already in the case's "sets" or "hidden", which _shapes follows
        return
    if kind == "dtype":
        args[name] = args[name].to(DTYPES[detail]) if detail != "bool" else args[name] > 0.5
    elif kind == "resize":  # detail: (dim, size), fresh values of the same dtype
        shape = list(args[name].shape)
        shape[detail[0]] = detail[1]
        args[name] = torch.rand(shape, dtype=torch.float64).to(args[name].dtype)
    elif kind == "rank":  # detail: how many leading dims of 1 to add, or -1: merge the first two
        t = args[name]
        args[name] = t[(None,) * detail] if detail > 0 else t.flatten(0, 1) if t.dim() >= 2 else t[0]
    elif kind == "device":
        args[name] = args[name].to("meta")
    elif kind == "not_tensor":
        args[name] = {"list": args[name].tolist, "none": lambda: None, "float": lambda: 1.0}[detail]()
    elif kind == "value":
        args[name] = detail


def build(case):
    """(keyword arguments of the call, upstream gradients for its outputs): deterministic in case."""
    gen = torch.Generator().manual_seed(case["seed"])
    dtype = DTYPES[case["dtype"]]
    args = {}
    for name, shape in _shapes(case).items():
        args[name] = lay_out(_values(name, shape, case, gen).to(dtype), case["layouts"].get(name, "contiguous"))
    args.update({order_name(case["op"]): case["order"], "activation": case["activation"],
                 "negative_slope": case["negative_slope"]})
    _spoil(args, case)
    outputs = 1 if case["op"] == "taylor_expand" else 2
    grad_outs = [torch.randn(case["shape"], generator=gen, dtype=torch.float64).to(dtype) for _ in range(outputs)]
    return args, grad_outs


def _snapshot(t):
    return t.detach().clone() if isinstance(t, torch.Tensor) and t.device.type != "meta" else None


def _unchanged(before, after):
    if before is None:
        return True
    a, b = before.double(), after.detach().double()
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0), b.nan_to_num(0))


def run(case):
    """{"outputs": [...], "grads": {name: grad}, "modified": [...]} or {"error": (type, message, where)}."""
    args, grad_outs = build(case)
    device = device_of(case["backend"])
    for name, value in args.items():
        if isinstance(value, torch.Tensor) and value.device.type == "cpu":
            args[name] = value.to(device) if device != "cpu" else value
    names = [n for n in tensor_names(case["op"]) if isinstance(args[n], torch.Tensor)]
    differentiable = all(args[n].dtype.is_floating_point for n in names)
    if differentiable:
        for name in names:
            args[name] = args[name].detach().requires_grad_()
    before = {name: _snapshot(args[name]) for name in names}
    try:
        with torch.backends.mkldnn.flags(enabled=False) if case["native_conv"] else contextlib.nullcontext():
            outs = getattr(ops, case["op"])(**args, backend=case["backend"])
            outs = outs if isinstance(outs, tuple) else (outs,)
            grads = {}
            if differentiable:
                leaves = [args[n] for n in names]
                got = torch.autograd.grad(outs, leaves, [g.to(device) for g in grad_outs], allow_unused=True)
                grads = {n: (torch.zeros_like(args[n]) if g is None else g).detach().cpu() for n, g in zip(names, got)}
    except Exception as exc:  # the test judges the type and the message
        return {"error": (type(exc).__name__, str(exc), traceback.format_exc(limit=-3))}
    return {"outputs": [o.detach().cpu() for o in outs], "grads": grads,
            "modified": [n for n in names if not _unchanged(before[n], args[n])]}


def _child(case, conn):
    torch.set_num_threads(1)
    # mkldnn.flags() warns that this torch has no Intel GPU support, once per child
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
    conn.send_bytes(pickle.dumps(run(case)))
    conn.close()


def run_in_child(case, timeout):
    """run(case) in a fresh child process: its report, or {"crash": why} when the child was killed
    by a signal, exited without a report, or outlived `timeout` seconds (then it is killed)."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(case, send))
    process.start()
    send.close()
    try:
        if receive.poll(timeout):
            try:
                return pickle.loads(receive.recv_bytes())
            except EOFError:
                pass
        else:
            process.kill()
            process.join()
            return {"crash": f"hang: no answer within {timeout} s"}
    finally:
        process.join(timeout)
        receive.close()
    code = process.exitcode
    return {"crash": f"the child died with exit code {code}" + (f" (signal {-code})" if code and code < 0 else "")}

