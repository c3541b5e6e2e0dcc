"""Random calls of the public ops on every backend, each in its own child process.

Hypothesis draws the op, the sizes (batch 0, 1x1 and images narrower than G's 2-pixel halo
included), the dtype, every tensor's memory layout (contiguous, channels_last, transposed,
every-other-pixel views, views at a storage offset, zero-stride expanded tensors), the values
(some large, some NaN/inf), shared or per-order weights, and at most one deliberate mistake.
What must happen is decided from that description alone (an oracle independent of the code
under test):
- a valid call returns what the fp64 reference returns for the same inputs, NaN and ±inf in the
  same places, and so do its gradients; it leaves its inputs as they were;
- a valid call that a fused backend does not implement (kernel size, dtype, C, hidden) is
  refused by a RuntimeError that says so;
- a malformed call raises TypeError or ValueError from the ops' validation, naming the argument.
A child killed by a signal, or one that does not answer in time, fails the test.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from backend_cases import OPS, backend_params, classes
from property_worker import IMAGE_NAMES, WEIGHT_NAMES, build, order_name, run_in_child, tensor_names
from taylor_fast import reference

ORDER_LIMIT = 32  # the ops' documented bound: order <= 32, k <= 31 (1/33! is a normal float32)
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
BAD_DTYPES = ("int32", "int64", "uint8", "bool", "complex64")
# What each fused backend implements (README "Backends"); the reference takes every valid call,
# and taylor_expand with order 0 returns f without asking any backend.
FUSED_LIMITS = {
    "cpu": dict(kernel=3, dtypes=FLOAT_DTYPES, channels=None, hidden=None),
    "cuda": dict(kernel=3, dtypes=FLOAT_DTYPES, channels=4, hidden=None),
    "triton": dict(kernel=3, dtypes=("float16", "bfloat16", "float32"), channels=4, hidden=64),
}
# |got - want| <= TOLERANCE * max(1, max |want|) for each output and gradient
TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2, "bfloat16": 6e-2}
EXAMPLES = {"reference": 50, "cpu": 60, "cuda": 60, "triton": 24}
TIMEOUT_S = 120  # generous: the machine may be busy; a hang still fails
LAYOUTS = ("contiguous", "contiguous", "channels_last", "transposed", "every_other", "offset", "expanded")


# ------------------------------------------------------------------------------ the cases

def _other(draw, values, avoid):
    return draw(st.sampled_from([v for v in values if v != avoid]))


def _mistakes(draw, case):
    """Makers of (kind, argument, detail, error) for one mistake that names one argument alone."""
    op, c, hidden, kernel = case["op"], case["shape"][1], case["hidden"], case["kernel"]
    images, tensors, lead = IMAGE_NAMES[op], tensor_names(op), 1 if case["per_order"] else 0
    weight_dims = {"w1": {lead + 1: 2 * c, lead + 3: kernel}, "b1": {lead: hidden},
                   "w2": {lead: c, lead + 1: hidden, lead + 3: kernel}, "b2": {lead: c}}

    def resize_image():
        name, dim = draw(st.sampled_from(images)), draw(st.integers(0, 3))
        return "resize", name, (dim, _other(draw, (0, 2, 9), case["shape"][dim])), ValueError

    def resize_weight():  # not w1's hidden dim: that would blame b1 as much as w1
        name = draw(st.sampled_from(WEIGHT_NAMES))
        dim = draw(st.sampled_from(sorted(weight_dims[name])))
        return "resize", name, (dim, weight_dims[name][dim] + 1), ValueError

    def rank():  # w1 one dim up or down turns shared into per-order for taylor_expand: two up
        name = draw(st.sampled_from(tensors))
        if name == "w1" and op == "taylor_expand":
            return "rank", name, 2, ValueError
        return "rank", name, draw(st.sampled_from((-1, 1))), ValueError

    order_name_ = order_name(op)
    too_large = ORDER_LIMIT + 1 if op == "taylor_expand" else ORDER_LIMIT
    makers = [
        lambda: ("dtype", draw(st.sampled_from(tensors)), draw(st.sampled_from(BAD_DTYPES)), TypeError),
        lambda: ("dtype", draw(st.sampled_from(tensors)), _other(draw, FLOAT_DTYPES, case["dtype"]), TypeError),
        resize_image, resize_weight, rank,
        lambda: ("device", draw(st.sampled_from(tensors)), None, ValueError),
        lambda: ("not_tensor", draw(st.sampled_from(tensors)), draw(st.sampled_from(("list", "none", "float"))),
                 TypeError),
        lambda: ("value", order_name_, draw(st.sampled_from((-1, -7, too_large, 1000))), ValueError),
        lambda: ("value", order_name_, draw(st.sampled_from((2.0, True, "2"))), TypeError),
        lambda: ("value", "activation", draw(st.sampled_from(("gelu", "ReLU", None))), ValueError),
        lambda: ("value", "negative_slope", draw(st.sampled_from((math.nan, -math.inf, "0.2", None))), ValueError),
        lambda: ("hidden", "w1", 0, ValueError),
    ]
    if case["per_order"]:
        makers.append(lambda: ("sets", "w1", None, ValueError))
    return makers


# The choices per backend speed. On the slow one (Triton interpreted, ~1 s a call) fewer cases
# must still be mostly valid calls it implements; the fast ones see more refusals and mistakes.
CHOICES = {
    "fast": dict(dtypes=FLOAT_DTYPES, channels=(1, 2, 3, 5), hidden=(1, 4, 8, 65), kernel=(3, 3, 3, 1, 5),
                 side=7, order=3, mistake=0.4),
    "slow": dict(dtypes=FLOAT_DTYPES + ("float32", "bfloat16"), channels=(1, 2, 3, 3, 3, 5),
                 hidden=(1, 4, 8, 8, 8, 65), kernel=(3,) * 7 + (5,), side=5, order=2, mistake=0.25),
}


@st.composite
def cases(draw, backend):
    op = draw(st.sampled_from(OPS))
    choose = CHOICES["slow" if backend == "triton" else "fast"]
    names = tensor_names(op)
    case = dict(
        op=op, backend=backend, dtype=draw(st.sampled_from(choose["dtypes"])),
        shape=(draw(st.sampled_from((0, 1, 2))), draw(st.sampled_from(choose["channels"])),
               draw(st.integers(1, choose["side"])), draw(st.integers(1, choose["side"]))),
        # k = 31, the largest: 1/32! is far below float16's range but the step must still hold
        order=draw(st.integers(0, choose["order"]) if op == "taylor_expand" else st.sampled_from((0, 1, 3, 31))),
        per_order=op == "taylor_expand" and draw(st.booleans()),
        hidden=draw(st.sampled_from(choose["hidden"])), kernel=draw(st.sampled_from(choose["kernel"])),
        activation=draw(st.sampled_from(("relu", "leaky_relu"))),
        negative_slope=draw(st.sampled_from((0.2, 0.0, -0.5, 1.5))),
        layouts={name: draw(st.sampled_from(LAYOUTS)) for name in names},
        large=draw(st.sampled_from((None,) * len(names) + names)),
        nonfinite=draw(st.just([]) | st.lists(st.tuples(st.sampled_from(names), st.floats(0, 0.999),
                                                        st.sampled_from((math.nan, math.inf, -math.inf))),
                                              min_size=1, max_size=2)),
        seed=draw(st.integers(0, 2**16)), spoil=None, error=None,
    )
    case["sets"] = case["order"] if case["per_order"] else None
    # a share of the cases with one mistake (sampled_from and booleans lean hard to one side)
    if draw(st.integers(0, 999)) >= 1000 * (1 - choose["mistake"]):
        kind, name, detail, error = draw(st.sampled_from(_mistakes(draw, case)))()
        case.update(spoil=(kind, name, detail), error=(error.__name__, name))
        if kind == "hidden":
            case["hidden"] = 0
        if kind == "sets":
            case["sets"] = case["order"] + (1 if case["order"] == 0 or draw(st.booleans()) else -1)
    # torch's oneDNN convolution skips the zero padding where the native one multiplies it, so
    # with a non-finite weight the reference backend's border differs by algorithm (see
    # test_ops_nonfinite); it runs the native one here, as the fp64 oracle does
    case["native_conv"] = backend == "reference" and any(name in WEIGHT_NAMES for name, _, _ in case["nonfinite"])
    return case


# ------------------------------------------------------------------------------ the oracle

def refusal(case):
    """Why the case's explicitly requested backend must refuse a valid call, or None."""
    limits = FUSED_LIMITS.get(case["backend"])
    if limits is None or (case["op"] == "taylor_expand" and case["order"] == 0):
        return None
    c, hidden = case["shape"][1], case["hidden"]
    if case["kernel"] != limits["kernel"]:
        return f"G's kernels are {case['kernel']}x{case['kernel']}"
    if case["dtype"] not in limits["dtypes"]:
        return f"dtype {case['dtype']} is not implemented"
    if limits["channels"] is not None and c > limits["channels"]:
        return f"C = {c} channels"
    if limits["hidden"] is not None and hidden > limits["hidden"]:
        return f"hidden = {hidden}"
    return None


def fp64_oracle(case):
    """(outputs, {argument: gradient}) of the reference in float64 on the case's own inputs, with
    torch's native convolution (which multiplies the zero padding like the fused kernels)."""
    args, grad_outs = build(case)
    names = tensor_names(case["op"])
    leaves = {name: args[name].detach().double().requires_grad_() for name in names}
    fn = getattr(reference, case["op"])
    positional = [leaves[n] for n in names] + [args[order_name(case["op"])], case["activation"], case["negative_slope"]]
    with torch.backends.mkldnn.flags(enabled=False):
        outs = fn(*positional)
        outs = outs if isinstance(outs, tuple) else (outs,)
        grads = torch.autograd.grad(outs, list(leaves.values()), [g.double() for g in grad_outs], allow_unused=True)
    grads = {n: torch.zeros_like(leaves[n]) if g is None else g for n, g in zip(names, grads)}
    return [o.detach() for o in outs], grads


def assert_matches(got, want, case, what, strict):
    """got (the case's dtype) against want (float64). strict: NaN/±inf exactly where want has
    them; else (gradients with non-finite inputs, where the fused backward may multiply a
    non-finite value by an out-of-image zero) never finite where want is not."""
    dtype = getattr(torch, case["dtype"])
    assert got.dtype == dtype and got.shape == want.shape, f"{what}: {got.dtype} {tuple(got.shape)}"
    want = want.to(dtype).double()  # values beyond the dtype's range are ±inf in it too
    got = got.double()
    if strict:
        assert torch.equal(classes(got), classes(want)), f"{what}: NaN/inf in other places than the reference's"
    else:
        assert not (got.isfinite() & ~want.isfinite()).any(), f"{what}: finite where the reference is not"
    both = got.isfinite() & want.isfinite()
    if both.any():
        scale = max(1.0, want[both].abs().max().item())
        error = (got[both] - want[both]).abs().max().item()
        assert error <= TOLERANCE[case["dtype"]] * scale, f"{what}: off by {error:.3g} (scale {scale:.3g})"


def in_range(outs, grads, dtype):
    """Whether the exact results stay well inside the dtype's range (else rounding alone may
    turn a large finite value into inf and inf - inf into NaN)."""
    limit = torch.finfo(getattr(torch, dtype)).max / 64
    return all(t[t.isfinite()].abs().max().item() < limit for t in [*outs, *grads.values()] if t.isfinite().any())


def check(case, oracle):
    """oracle: fp64_oracle(case) for a valid call the backend implements, else None."""
    got = run_in_child(case, TIMEOUT_S)
    assert "crash" not in got, got.get("crash")
    if case["error"] is not None:
        error, name = case["error"]
        assert "error" in got, f"a malformed call ({case['spoil']}) returned a result"
        kind, message, where = got["error"]
        assert kind == error, f"expected {error}, got {kind}: {message}\n{where}"
        assert message.startswith(f"taylor_fast.ops.{case['op']}: ") and f"'{name}'" in message, message
        return
    why = refusal(case)
    if why is not None:
        assert "error" in got, f"backend {case['backend']} ran a call it does not implement ({why})"
        kind, message, where = got["error"]
        assert kind == "RuntimeError" and f"backend '{case['backend']}' cannot run this call" in message, message
        return
    assert "error" not in got, "a valid call failed: {}: {}\n{}".format(*got["error"])
    want_outs, want_grads = oracle
    assert got["modified"] == [], f"the call wrote to its inputs {got['modified']}"
    assert len(got["outputs"]) == len(want_outs)
    for i, (out, want) in enumerate(zip(got["outputs"], want_outs)):
        assert_matches(out, want, case, f"output {i}", strict=True)
    assert got["grads"].keys() == want_grads.keys()
    for name, grad in got["grads"].items():
        assert_matches(grad, want_grads[name], case, f"gradient of {name}", strict=not case["nonfinite"])


@pytest.mark.parametrize("backend", backend_params())
def test_random_calls_give_the_reference_result_or_a_clear_error(backend):
    @settings(max_examples=EXAMPLES[backend], deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=cases(backend))
    def property_holds(case):
        event("malformed" if case["error"] else "refused" if refusal(case) else "valid")
        oracle = None
        if case["error"] is None and refusal(case) is None:
            oracle = fp64_oracle(case)
            assume(in_range(*oracle, case["dtype"]))
        check(case, oracle)

    property_holds()


# ------------------------------------------------------------------------------ the reference module

# The mistakes that taylor_fast.reference (which validates nothing: its docstring sends callers to
# taylor_fast.ops) computes through instead of raising, and what it then does. Every other
# mistake makes it raise, from torch's own checks (which do not name the argument).
REFERENCE_ACCEPTS = {
    ("dtype", "y", "int32"): "torch.cat promotes y to g's float dtype",
    ("device", "w1", None): "a meta w1 makes the convolution a meta one: shapes, no values",
    ("not_tensor", "b1", "none"): "conv2d without a bias",
    ("value", "ORDER", -1): "order: no terms, O = f; k: g_next = G - g, divided by 0! = 1",
    ("value", "ORDER", "LIMIT"): "one order or k past the ops' bound still computes",
    ("value", "ORDER", True): "True is the int 1",
    ("value", "negative_slope", math.nan): "relu ignores the slope (leaky_relu would give NaN)",
    ("value", "negative_slope", "0.2"): "relu ignores the slope",
    ("sets", "w1", None): "taylor_expand uses the first `order` of the 3 per-order sets",
}
REFERENCE_REFUSES = [
    ("dtype", "w1", "bool"), ("dtype", "b2", "complex64"), ("dtype", "y", "float64"), ("dtype", "b1", "float64"),
    ("resize", "y", (0, 3)), ("resize", "y", (2, 4)), ("resize", "y", (1, 2)), ("resize", "IMAGE", (3, 0)),
    ("resize", "w1", (1, 7)), ("resize", "w1", (3, 4)), ("resize", "b1", (0, 9)), ("resize", "w2", (1, 9)),
    ("resize", "b2", (0, 4)), ("rank", "IMAGE", -1), ("rank", "IMAGE", 1), ("rank", "b1", 1), ("rank", "w2", 1),
    ("device", "y", None), ("not_tensor", "w1", "list"), ("value", "ORDER", 1000), ("value", "ORDER", 2.0),
    ("value", "ORDER", "2"), ("value", "activation", "gelu"), ("hidden", "w1", 0),
]


def _reference_case(op, mistake):
    kind, name, detail = mistake
    name = {"IMAGE": IMAGE_NAMES[op][0], "ORDER": order_name(op)}.get(name, name)
    if detail == "LIMIT":
        detail = ORDER_LIMIT + 1 if op == "taylor_expand" else ORDER_LIMIT
    return dict(op=op, backend="reference", dtype="float32", shape=(2, 3, 5, 6), order=2, per_order=kind == "sets",
                sets=3 if kind == "sets" else None, hidden=0 if kind == "hidden" else 8, kernel=3, activation="relu",
                negative_slope=0.2, layouts={}, large=None, nonfinite=[], seed=0, spoil=(kind, name, detail))


@pytest.mark.parametrize("op,mistake", [(op, m) for op in OPS for m in list(REFERENCE_ACCEPTS) + REFERENCE_REFUSES
                                         if m[0] != "sets" or op == "taylor_expand"], ids=str)
def test_the_reference_module_refuses_the_same_mistakes_or_says_why_not(op, mistake):
    """The ops refuse every one of these (the property test above); the bare reference refuses
    them too, except where REFERENCE_ACCEPTS says what it does instead."""
    args, _ = build(_reference_case(op, mistake))
    try:
        getattr(reference, op)(**args)
    except Exception:
        assert mistake not in REFERENCE_ACCEPTS, "the reference now refuses this: drop it from REFERENCE_ACCEPTS"
    else:
        assert mistake in REFERENCE_ACCEPTS, "the reference computed through a malformed call"
