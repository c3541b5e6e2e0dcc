"""The ops under torch.autocast: G is two convolutions, so the ops follow autocast's rule for
conv2d and run in the autocast dtype. Under autocast a backbone's output f is typically bfloat16
while y and G's weights stay float32; the ops take one dtype for all their inputs, so the
floating-point inputs are cast here, for every backend alike (the fused backends compute in
float32 internally and round once on output). Like autocast, float64 tensors and tensors on
another device are left alone (validation then names them), and the casts are differentiable,
so gradients reach the float32 parameters."""
from __future__ import annotations

import torch


# Dynamo of torch 2.11 cannot trace torch.amp.is_autocast_available (a pybind builtin) and would
# break torch.compile(fullgraph=True) on it; the answer depends on the device type alone, which the
# compiled graph is specialised on anyway, so it is taken once at trace time as a constant.
@torch.compiler.assume_constant_result
def _autocast_available(device_type: str) -> bool:
    return torch.amp.is_autocast_available(device_type)


def cast_inputs(*tensors):
    """`tensors` cast to the autocast dtype of the first one's device when autocast is on there."""
    first = tensors[0]
    if not isinstance(first, torch.Tensor):
        return tensors  # validation reports it
    device_type = first.device.type
    if not (_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(_cast(t, dtype, first.device) for t in tensors)


def _cast(t, dtype, device):
    eligible = (isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64
                and t.device == device)
    return t.to(dtype) if eligible else t
