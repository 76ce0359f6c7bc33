"""A training step captured once in a CUDA graph and replayed for every mini-batch.

At the book's mini-batch of 10 a GPU is idle most of the time: one step of
a chapter 6 network launches a few hundred small kernels, and launching
them takes longer than running them. A CUDA graph records those launches
once and replays them with one call, which trains the chapter 6 networks 8
to 17 times faster on an H200 (``docs/performance.md``, "On a GPU").

``GraphedStep`` wraps an engine's ``step(xb, yb, ...)``. Each mini-batch is
copied into static input buffers and the captured step is replayed on them;
it computes what the eager step computes, on the same parameters, optimiser
state and dropout generators, which it updates in place. The step is
captured again whenever its ``key`` changes: the learning rate (a constant
inside the graph), the shapes, the members still training. Mini-batches
of another shape than the captured one (a last partial mini-batch) run
eagerly.

What a step may do to be captured: no synchronisation with the host, no
new parameter or optimiser tensors (they are created by the warm-up steps,
which run eagerly), random numbers only from the ``generators`` given.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from nndl.deep._torch import torch
from nndl.errors import ConfigError

#: Eager steps before a capture: cuDNN's choice of kernels and the memory allocator settle in them.
WARMUP = 3


class GraphedStep:
    """``step`` on static input buffers, captured in a ``torch.cuda.CUDAGraph`` and replayed.

    Parameters
    ----------
    step : callable
        ``step(*inputs) -> tensor``: one training step on tensors (the
        mini-batch, (m, c, h, w) and (m,) for one network).
    device : torch.device
        Where ``step`` runs. On a CUDA device the step is captured; on any
        other it runs eagerly on the same static buffers (what the tests
        of this class use, where there is no GPU).
    generators : sequence of torch.Generator
        The generators ``step`` draws from (dropout masks), registered with
        every graph so that each replay draws afresh from them, as an eager
        step would.
    warmup : int
        Eager steps after each new key before it is captured.

    Attributes
    ----------
    captures : int
        How many times a step was captured (or, without CUDA, would have been).
    """

    def __init__(self, step: Callable[..., torch.Tensor], device: torch.device,
                 generators: Sequence[torch.Generator] = (), warmup: int = WARMUP) -> None:
        self.step, self.device, self.generators, self.warmup = step, torch.device(device), list(generators), warmup
        self.key: Hashable = None
        self.graph: Any = None
        self.inputs: list[torch.Tensor] = []
        self.output: torch.Tensor | None = None
        self.warm = 0
        self.captures = 0

    @property
    def capturing(self) -> bool:
        """Whether steps are captured in CUDA graphs (False: run eagerly on the static buffers)."""
        return self.device.type == "cuda"

    def __call__(self, key: Hashable, *inputs: torch.Tensor) -> torch.Tensor:
        """One training step on ``inputs``; returns its output (the graph's own tensor: read it before the next)."""
        if key != self.key:
            self.reset(key)
        if self.output is not None and any(a.shape != b.shape for a, b in zip(inputs, self.inputs)):
            return self.step(*inputs)                    # another shape: a last partial mini-batch
        if self.warm < self.warmup:
            self.warm += 1
            return self._eager(*inputs)
        if self.output is None:
            self._capture(inputs)                        # (this trains on the mini-batch too)
            assert self.output is not None
            return self.output
        for static, value in zip(self.inputs, inputs):
            static.copy_(value, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
        else:
            self.output = self.step(*self.inputs)
        return self.output

    def reset(self, key: Hashable) -> None:
        """Forget the captured step (its memory goes back when nothing else holds it); the next calls warm up."""
        self.key, self.graph, self.inputs, self.output, self.warm = key, None, [], None, 0

    def _eager(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.capturing:
            return self.step(*inputs)
        # On a side stream, as PyTorch asks of the steps before a capture.
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            output = self.step(*inputs)
        main.wait_stream(side)
        return output

    def _capture(self, inputs: Sequence[torch.Tensor]) -> None:
        self.inputs = [value.clone() for value in inputs]
        self.captures += 1
        if not self.capturing:
            self.output = self.step(*self.inputs)        # (this first step on the buffers trains, as a replay would)
            return
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        inside: list[Exception] = []                     # an error in the step, which ending the capture may hide
        try:
            with torch.cuda.graph(graph):
                try:
                    output = self.step(*self.inputs)
                except Exception as e:
                    inside.append(e)
                    raise
        except Exception as e:
            cause = inside[0] if inside else e
            first = (str(cause).strip().splitlines() or [""])[0]
            raise RuntimeError(f"the training step could not be captured in a CUDA graph ({type(cause).__name__}: "
                               f"{first}); train without CUDA graphs") from e
        self.graph, self.output = graph, output
        graph.replay()                                   # capturing ran nothing: this is the step


def check_cuda_graph(device: Any) -> None:
    """Refuse CUDA graphs, in one line, where they cannot run: not a CUDA device, or too old a PyTorch."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ConfigError(f"CUDA graphs need a CUDA GPU, not {device}: train on a GPU (--device cuda), or "
                          "without CUDA graphs")
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        raise ConfigError(f"CUDA graphs need a PyTorch whose graphs can draw dropout masks "
                          f"(CUDAGraph.register_generator_state); this one is {torch.__version__}")
