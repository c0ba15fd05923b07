"""Numerical gradient checking (CS231n style): central differences against autograd, in float64.

    result = numerical_gradient_check(lambda x, w: multiclass_hinge_loss(x @ w, y), x, w)
    result.raise_if_failed()

``fn`` may return any tensor: it is reduced to the scalar ``(fn(*inputs) * v).sum()`` with a fixed
random ``v`` (``v = 1`` for a scalar), so the check compares the vector-Jacobian product ``J^T v``.
Every floating-point tensor input is checked (at every element, or at ``max_checks_per_input``
random ones for big inputs such as network weights); other inputs (integer targets) pass as is.
``fn`` must be deterministic: put modules in eval mode, no dropout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


class GradientCheckError(AssertionError):
    """Autograd and central differences disagree beyond the tolerance."""


@dataclass(frozen=True)
class GradCheckResult:
    """Outcome of a check. The ``worst_*`` fields describe the element of largest relative error:
    which input (position in ``inputs``), which element (index tuple), both derivative values."""

    passed: bool
    max_relative_error: float
    checked_elements: int
    worst_input: int
    worst_index: tuple[int, ...]
    analytical: float
    numerical: float

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise GradientCheckError(str(self))

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"gradient check {verdict}: max relative error {self.max_relative_error:.3g} over "
            f"{self.checked_elements} elements; worst at input {self.worst_input} index "
            f"{self.worst_index}: autograd {self.analytical:.6g} vs numerical "
            f"{self.numerical:.6g}"
        )


def numerical_gradient_check(
    fn: Callable[..., torch.Tensor],
    *inputs: object,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_checks_per_input: int | None = None,
    seed: int = 0,
    raise_on_failure: bool = False,
) -> GradCheckResult:
    """Compare autograd's gradient of ``fn`` with central differences ``(f(x+e) - f(x-e)) / 2e``.

    An element passes when ``|autograd - numerical| <= atol + rtol * |numerical|``. The reported
    relative error is ``|a - n| / max(|a|, |n|, atol)`` (the floor keeps gradients that are zero up
    to rounding from reporting a relative error of 1).
    """
    generator = torch.Generator().manual_seed(seed)
    inputs64 = [_as_float64_leaf(x) for x in inputs]
    checked = [i for i, x in enumerate(inputs64) if _is_float_tensor(x)]
    if not checked:
        raise ValueError("numerical_gradient_check: no floating-point tensor among the inputs")
    projection = _projection(fn(*inputs64), generator)

    def objective() -> torch.Tensor:
        return (fn(*inputs64) * projection).sum()

    analytical = torch.autograd.grad(objective(), [inputs64[i] for i in checked], allow_unused=True)
    worst = (-1.0, 0, (), 0.0, 0.0)
    passed, count = True, 0
    for position, grad in zip(checked, analytical):
        tensor = inputs64[position]
        grad = torch.zeros_like(tensor) if grad is None else grad
        for flat in _element_indices(tensor.numel(), max_checks_per_input, generator):
            numerical = _central_difference(objective, tensor, flat, eps)
            value = float(grad.reshape(-1)[flat])
            passed &= abs(value - numerical) <= atol + rtol * abs(numerical)
            scale = max(abs(value), abs(numerical), atol)
            error = abs(value - numerical) / scale if scale else 0.0
            if error > worst[0]:
                index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tensor.shape))
                worst = (error, position, index, value, numerical)
            count += 1
    result = GradCheckResult(bool(passed), worst[0], count, worst[1], worst[2], worst[3], worst[4])
    if raise_on_failure:
        result.raise_if_failed()
    return result


def _is_float_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _as_float64_leaf(value: object) -> object:
    if not _is_float_tensor(value):
        return value
    return value.detach().to(torch.float64).clone().requires_grad_(True)


def _projection(output: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if output.numel() == 1:
        return torch.ones_like(output)
    return torch.randn(output.shape, generator=generator, dtype=torch.float64)


def _element_indices(numel: int, limit: int | None, generator: torch.Generator) -> Sequence[int]:
    if limit is None or limit >= numel:
        return range(numel)
    return torch.randperm(numel, generator=generator)[:limit].tolist()


@torch.no_grad()
def _central_difference(
    objective: Callable[[], torch.Tensor], tensor: torch.Tensor, flat: int, eps: float
) -> float:
    element = tensor.view(-1)
    original = float(element[flat])
    element[flat] = original + eps
    plus = float(objective())
    element[flat] = original - eps
    minus = float(objective())
    element[flat] = original
    return (plus - minus) / (2 * eps)
