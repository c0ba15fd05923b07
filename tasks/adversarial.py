"""Adversarial attacks on image classifiers, in pixel space, and the adversarial-training option.

Every attack works on pixels in ``[0, 1]`` (float ``[B, C, H, W]``) against a function
``model(pixels) -> logits [B, K]``; :class:`PixelSpace` turns the normalized images of a batch
into pixels and back, so ``epsilon`` is always in pixel units (``8 / 255``, ``0.1``), whatever
normalization the data uses. Results stay in ``[0, 1]``.

- :func:`pgd`: projected gradient descent (Madry et al. 2018) in the L-inf or L2 ball, with a
  random start, untargeted (raise the loss of ``labels``) or targeted (lower the loss of
  ``labels``, then the target classes). :func:`fgsm` is its one-step case (Goodfellow et al.
  2015): a perturbation of L-inf norm exactly ``epsilon``.
- :func:`simba`: a black-box attack (SimBA, Guo et al. 2019) that sees only output
  probabilities and counts the queries it makes per image.
- :class:`AdversarialConfig`: ``task.args.adversarial`` of the classification task, which
  trains on PGD-k (or FGSM with a random start, "fast adversarial training", Wong et al. 2020)
  examples instead of clean ones. Nothing in an attack reads a value back from the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from visionflow.errors import SpecError

Model = Callable[[torch.Tensor], torch.Tensor]  # pixels [B, C, H, W] in [0, 1] -> logits [B, K]
Norm = Literal["linf", "l2"]


@dataclass(frozen=True)
class PixelSpace:
    """The data's per-channel normalization ``images = (pixels - mean) / std``; ``mean``, ``std``
    on the ``[0, 1]`` scale, ``[C]`` each (``None``: the images already are pixels). Give tensors
    already on the images' device to keep a GPU step free of host copies."""

    mean: Sequence[float] | torch.Tensor | None = None
    std: Sequence[float] | torch.Tensor | None = None

    def _stats(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels = images.shape[1]
        mean = torch.as_tensor(self.mean if self.mean is not None else [0.0] * channels)
        std = torch.as_tensor(self.std if self.std is not None else [1.0] * channels)
        view = (1, channels, 1, 1)
        return (
            mean.to(images).expand(channels).reshape(view),
            std.to(images).expand(channels).reshape(view),
        )

    def to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized ``[B, C, H, W]`` -> pixels ``[B, C, H, W]`` (``[0, 1]`` for real images)."""
        mean, std = self._stats(images)
        return images * std + mean

    def to_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B, C, H, W]`` -> the normalized images the net takes."""
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def wrap(self, net: Callable[[torch.Tensor], torch.Tensor]) -> Model:
        """``net`` as a function of pixels."""
        return lambda pixels: net(self.to_inputs(pixels))


def _per_sample_norm(delta: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample of ``[B, ...]`` as ``[B, 1, 1, 1]`` (never zero)."""
    return delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (delta.dim() - 1))


def project(delta: torch.Tensor, epsilon: float, norm: Norm) -> torch.Tensor:
    """``delta [B, C, H, W]`` moved into the ``norm`` ball of radius ``epsilon``."""
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    return delta * (epsilon / _per_sample_norm(delta)).clamp(max=1.0)


def random_start(
    pixels: torch.Tensor, epsilon: float, norm: Norm, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random perturbation ``[B, C, H, W]`` inside the ball: uniform per pixel (L-inf), or a
    random direction with a uniform radius (L2)."""
    if norm == "linf":
        noise = torch.rand(pixels.shape, generator=generator, device=pixels.device)
        return (noise * 2 - 1) * epsilon
    direction = torch.randn(pixels.shape, generator=generator, device=pixels.device)
    radius = torch.rand(
        (len(pixels),) + (1,) * (pixels.dim() - 1), generator=generator, device=pixels.device
    )
    return direction / _per_sample_norm(direction) * radius * epsilon


def _step(gradient: torch.Tensor, step_size: float, norm: Norm) -> torch.Tensor:
    """The ascent step ``[B, C, H, W]``: the gradient's sign (L-inf) or unit direction (L2)."""
    if norm == "linf":
        return step_size * gradient.sign()
    return step_size * gradient / _per_sample_norm(gradient)


def pgd(
    model: Model,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    norm: Norm = "linf",
    targeted: bool = False,
    random_init: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Adversarial pixels ``[B, C, H, W]`` in ``[0, 1]`` within ``epsilon`` of ``pixels``.

    ``labels [B]``: the true classes (untargeted: raise their cross-entropy) or, with
    ``targeted``, the classes to reach (lower theirs). ``step_size`` defaults to
    ``2.5 * epsilon / steps``. The model's parameters get no gradient."""
    pixels = pixels.detach()
    if epsilon == 0:
        return pixels.clone()
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    delta = (
        random_start(pixels, epsilon, norm, generator) if random_init else torch.zeros_like(pixels)
    )
    delta = (pixels + delta).clamp(0, 1) - pixels
    with torch.enable_grad():
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(pixels + delta).float(), labels)
            (gradient,) = torch.autograd.grad(loss, delta)
            step = _step(gradient, step_size, norm)
            delta = project(delta.detach() + (-step if targeted else step), epsilon, norm)
            delta = (pixels + delta).clamp(0, 1) - pixels
    return (pixels + delta).detach()


def fgsm(
    model: Model,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    targeted: bool = False,
) -> torch.Tensor:
    """Fast gradient sign method: ``clamp(pixels + epsilon * sign(grad), 0, 1)`` ``[B, C, H, W]``
    (minus the step when ``targeted``)."""
    return pgd(
        model,
        pixels,
        labels,
        epsilon,
        steps=1,
        step_size=epsilon,
        norm="linf",
        targeted=targeted,
        random_init=False,
    )


# ------------------------------------------------------------------------------- black box


@dataclass
class BlackBoxResult:
    """What :func:`simba` returns: ``pixels [B, C, H, W]`` and ``queries [B]`` (int64, the
    probability queries spent on each image, the first included)."""

    pixels: torch.Tensor
    queries: torch.Tensor


@torch.no_grad()
def simba(
    probabilities: Model,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    max_queries: int = 500,
    generator: torch.Generator | None = None,
) -> BlackBoxResult:
    """SimBA with the pixel basis: for each image, random pixels in turn are moved by
    ``-epsilon`` (or else ``+epsilon``) when that lowers the probability of the true class, until
    the image is misclassified or has spent ``max_queries``. Sees only ``probabilities(pixels) ->
    [B, K]``; the result stays within ``epsilon`` (L-inf) of ``pixels`` and in ``[0, 1]``."""
    batch = len(pixels)
    flat = pixels.detach().flatten(1).clone()  # [B, D]
    rows = torch.arange(batch, device=pixels.device)
    order = torch.stack(
        [torch.randperm(flat.shape[1], generator=generator) for _ in range(batch)]
    ).to(pixels.device)  # [B, D]
    probs = probabilities(flat.view_as(pixels))
    true_prob = probs[rows, labels]
    active = probs.argmax(dim=1) == labels
    queries = torch.ones(batch, dtype=torch.int64, device=pixels.device)
    for column in range(flat.shape[1]):
        coords = order[:, column]
        trying = active & (queries < max_queries)
        for sign in (-1.0, 1.0):
            if not bool(trying.any()):
                break
            candidate = flat.clone()
            candidate[rows, coords] = (candidate[rows, coords] + sign * epsilon).clamp(0, 1)
            probs = probabilities(candidate.view_as(pixels))
            queries += trying.long()
            better = trying & (probs[rows, labels] < true_prob)
            flat = torch.where(better[:, None], candidate, flat)
            true_prob = torch.where(better, probs[rows, labels], true_prob)
            active = active & ~(better & (probs.argmax(dim=1) != labels))
            trying = trying & ~better & (queries < max_queries)
        if not bool((active & (queries < max_queries)).any()):
            break
    return BlackBoxResult(flat.view_as(pixels), queries)


# ---------------------------------------------------------------------- adversarial training


@dataclass(frozen=True)
class AdversarialConfig:
    """``task.args.adversarial`` of the classification task: train on adversarial examples.

    ``attack: pgd`` runs ``steps`` PGD steps of ``step_size`` (default ``2.5 * epsilon / steps``)
    from a random start; ``attack: fgsm`` takes one step of ``step_size`` (default
    ``1.25 * epsilon``) from a random start ("fast adversarial training"). ``epsilon`` is in
    pixel units (``[0, 1]`` scale)."""

    attack: Literal["pgd", "fgsm"] = "pgd"
    epsilon: float = 0.1
    steps: int = 7
    step_size: float | None = None
    norm: Norm = "linf"

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise SpecError(f"adversarial.epsilon: must be > 0, got {self.epsilon}")
        if self.steps < 1:
            raise SpecError(f"adversarial.steps: must be >= 1, got {self.steps}")
        if self.step_size is not None and not self.step_size > 0:
            raise SpecError(f"adversarial.step_size: must be > 0, got {self.step_size}")
        if self.attack == "fgsm" and self.norm != "linf":
            raise SpecError("adversarial.norm: fgsm is an L-inf attack", hint="use norm: linf")

    def perturb(self, model: Model, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial training examples ``[B, C, H, W]`` for ``pixels`` and their ``labels``."""
        if self.attack == "fgsm":
            step = 1.25 * self.epsilon if self.step_size is None else self.step_size
            return pgd(model, pixels, labels, self.epsilon, steps=1, step_size=step)
        return pgd(
            model,
            pixels,
            labels,
            self.epsilon,
            steps=self.steps,
            step_size=self.step_size,
            norm=self.norm,
        )
