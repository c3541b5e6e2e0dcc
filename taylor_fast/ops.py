"""Public ops: validate, choose a backend, run; and explain(), which says what taylor_expand would
choose and why. Every backend is differentiable; the fused ones (cpu, cuda, triton) carry a
hand-written backward registered through torch.library, so torch.compile(fullgraph=True) traces
them without graph breaks. Under torch.autocast they run in the autocast dtype, as conv2d does
(_autocast.py)."""
from __future__ import annotations

from . import _autocast, _validation, backends


def _expand_call(f, y, w1, b1, w2, b2, order, activation, negative_slope, backend, fn):
    """(the inputs as the backend gets them, the validated Call)."""
    backends.check_name(backend, fn)
    inputs = _autocast.cast_inputs(f, y, w1, b1, w2, b2)
    return inputs, _validation.check_expand(*inputs, order, activation, negative_slope, fn)


def taylor_expand(f, y, w1, b1, w2, b2, order, activation="relu", negative_slope=0.2, backend="auto"):
    """O = f + sum_{k=1..order} g^k / k! with g^0 = f and g^{k+1} = G(g^k, y) + k g^k.

    f, y: (N, C, H, W). Shared weights: w1 (hidden, 2C, 3, 3), b1 (hidden,), w2 (C, hidden, 3, 3),
    b2 (C,); per-order weights carry a leading dimension of size `order`. A call that needs no
    gradient (grad mode off, or no input requiring grad) keeps no g^k where the backend can skip them.
    """
    fn = "taylor_fast.ops.taylor_expand"
    inputs, call = _expand_call(f, y, w1, b1, w2, b2, order, activation, negative_slope, backend, fn)
    if order == 0:  # no convolution to run: f passes through uncast
        return f
    return backends.choose(backend, call, fn).expand(call, *inputs, order)


def taylor_step(g, y, acc, w1, b1, w2, b2, k, activation="relu", negative_slope=0.2, backend="auto"):
    """One order: returns (g_next, acc_next) with g_next = G(g, y) + k*g and acc_next = acc + g_next/(k+1)!."""
    fn = "taylor_fast.ops.taylor_step"
    backends.check_name(backend, fn)
    inputs = _autocast.cast_inputs(g, y, acc, w1, b1, w2, b2)
    call = _validation.check_step(*inputs, k, activation, negative_slope, fn)
    return backends.choose(backend, call, fn).step(call, *inputs, k)


def explain(f, y, w1, b1, w2, b2, order, activation="relu", negative_slope=0.2,
            backend="auto") -> backends.Explanation:
    """Which backend taylor_expand(the same arguments) runs, and for each backend None if it could
    serve the call, else why not. Runs nothing; raises what taylor_expand raises for malformed
    arguments.

        >>> taylor_fast.explain(f, y, *G.weights(), 3)
        Explanation(backend='cpu', reasons={'reference': None, 'cpu': None,
                    'cuda': 'not available: ...', 'triton': 'not available: ...'})

    backend is None where nothing would run: at order 0 (f is returned as it is), or when the
    backend asked for cannot serve the call (taylor_expand raises; reasons[backend] says why).
    """
    _, call = _expand_call(f, y, w1, b1, w2, b2, order, activation, negative_slope, backend, "taylor_fast.explain")
    explanation = backends.explain_call(backend, call)
    return explanation._replace(backend=None) if order == 0 else explanation
