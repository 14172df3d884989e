"""Explicit streaming state for causal networks.

Every causal layer gets its left context from a `CausalPad`. Offline, the pad is
zeros. Inside `stream(module, caches)` each pad instead prepends its cache tensor
(the previous call's last `size` input samples) and hands back the new one, so a
network run chunk by chunk equals the same network run over the whole signal.

The caches are plain tensors in a fixed order (the order of `module.modules()`),
which is what an exporter needs to turn a network into a stateless graph:

    specs = cache_specs(decoder, batch=1)          # [(name, shape), ...]
    caches = init_caches(decoder, batch=1)         # zeros = reset
    with stream(decoder, caches) as ctx:
        audio = decoder(z_frame, attrs_frame, noise)
    caches = ctx.new_caches
"""
from contextlib import contextmanager
from typing import Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class CausalPad(nn.Module):
    """Left context of `size` samples x `channels`: zeros offline, a cache when streaming."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.channels = channels
        self.size = size
        self._stream = None  # a _StreamContext while streaming

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return x
        ctx = self._stream
        if ctx is None:
            return F.pad(x, (self.size, 0))
        full = torch.cat([ctx.take(self), x], dim=-1)
        ctx.put(self, full[..., full.shape[-1] - self.size:])
        return full

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}"


class StateCell(CausalPad):
    """A value carried from one streaming call to the next ([B, channels, 1]); zeros
    offline, at the start of a signal and after a reset (a phase, for instance)."""

    def __init__(self, channels: int = 1):
        super().__init__(channels, 1)

    def read(self, like: torch.Tensor) -> torch.Tensor:
        ctx = self._stream
        if ctx is None:
            return like.new_zeros(like.shape[0], self.channels, 1)
        return ctx.take(self)

    def write(self, value: torch.Tensor) -> None:
        if self._stream is not None:
            self._stream.put(self, value)


def causal_pads(module: nn.Module) -> List[Tuple[str, CausalPad]]:
    """The module's pads that hold state (size > 0), in the fixed cache order."""
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, CausalPad) and m.size > 0]


def cache_specs(module: nn.Module, batch: int = 1) -> List[Tuple[str, Tuple[int, int, int]]]:
    """(name, shape) of every cache tensor, in order; names are module paths."""
    return [(name, (batch, pad.channels, pad.size)) for name, pad in causal_pads(module)]


def init_caches(module: nn.Module, batch: int = 1, device=None,
                dtype: torch.dtype = torch.float32) -> List[torch.Tensor]:
    """Zero caches: the state right after a reset."""
    return [torch.zeros(shape, device=device, dtype=dtype)
            for _, shape in cache_specs(module, batch)]


class _StreamContext:
    def __init__(self, pads: Sequence[CausalPad], caches: Sequence[torch.Tensor]):
        if len(caches) != len(pads):
            raise ValueError(f"expected {len(pads)} cache tensors, got {len(caches)}")
        self._index = {id(p): i for i, p in enumerate(pads)}
        self._caches = list(caches)
        self._new: List = [None] * len(pads)

    def take(self, pad: CausalPad) -> torch.Tensor:
        return self._caches[self._index[id(pad)]]

    def put(self, pad: CausalPad, value: torch.Tensor) -> None:
        self._new[self._index[id(pad)]] = value

    @property
    def new_caches(self) -> List[torch.Tensor]:
        missing = [i for i, c in enumerate(self._new) if c is None]
        if missing:
            raise RuntimeError(f"caches {missing} were not updated during the streaming call")
        return list(self._new)


@contextmanager
def stream(module: nn.Module, caches: Sequence[torch.Tensor]) -> Iterator[_StreamContext]:
    """Run `module` on one chunk with explicit caches; read `ctx.new_caches` afterwards."""
    pads = [pad for _, pad in causal_pads(module)]
    ctx = _StreamContext(pads, caches)
    for pad in pads:
        pad._stream = ctx
    try:
        yield ctx
    finally:
        for pad in pads:
            pad._stream = None


class StreamingStep(nn.Module):
    """A stateless step for export: forward(*inputs, *caches) -> (*outputs, *new_caches).

    `n_inputs` signal tensors come first, then one tensor per `cache_specs(module)` entry in
    that order; the outputs are the module's output(s) followed by the updated caches.
    Tracing it (e.g. `torch.onnx.export`) gives a graph with every state explicit.
    """

    def __init__(self, module: nn.Module, n_inputs: int):
        super().__init__()
        self.module = module
        self.n_inputs = n_inputs

    def forward(self, *args: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        inputs, caches = args[:self.n_inputs], args[self.n_inputs:]
        with stream(self.module, caches) as ctx:
            out = self.module(*inputs)
        outputs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        return outputs + tuple(ctx.new_caches)
