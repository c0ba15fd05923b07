"""Attribution maps: which pixels of an image a classifier's score for a class depends on.

Every function takes ``model(images [B, C, H, W]) -> logits [B, K]``, ``images`` and the
classes ``targets [B]`` to explain, and leaves the model's parameters without gradients.

- :func:`saliency`: the gradient of the class score w.r.t. the input (Simonyan et al. 2014);
- :func:`smoothgrad`: that gradient averaged over noisy copies (Smilkov et al. 2017);
- :func:`occlusion`: the drop in the class probability when a sliding patch is blanked;
- :func:`guided_backprop`: the gradient with ReLUs passing only positive gradients back
  (Springenberg et al. 2015);
- :func:`class_activation_map` (CAM, Zhou et al. 2016) for nets with global pooling and a linear
  head, and :func:`grad_cam` (Selvaraju et al. 2017) for any conv layer, by name.

:func:`pixel_map` turns a ``[B, C, H, W]`` attribution into the ``[B, H, W]`` map that is plotted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from visionflow.errors import SpecError

Model = Callable[[torch.Tensor], torch.Tensor]


def class_scores(model: Model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The logits ``[B]`` of ``targets [B]``."""
    return model(images).gather(1, targets[:, None]).squeeze(1)


def saliency(model: Model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``d score[target] / d images``, ``[B, C, H, W]`` (signed; :func:`pixel_map` for a map)."""
    with torch.enable_grad():
        images = images.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(class_scores(model, images, targets).sum(), images)
    return gradient


def smoothgrad(
    model: Model,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    samples: int = 25,
    sigma: float = 0.15,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean :func:`saliency` ``[B, C, H, W]`` over ``samples`` copies with Gaussian noise of
    standard deviation ``sigma * (max - min)`` of each image."""
    spread = (images.flatten(1).amax(1) - images.flatten(1).amin(1)).view(-1, 1, 1, 1)
    total = torch.zeros_like(images)
    for _ in range(samples):
        noise = torch.randn(images.shape, generator=generator, device=images.device)
        total += saliency(model, images + noise * sigma * spread, targets)
    return total / samples


@torch.no_grad()
def occlusion(
    model: Model,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    patch: int = 4,
    stride: int = 2,
    baseline: float = 0.0,
) -> torch.Tensor:
    """Probability drop map ``[B, H, W]``: each pixel gets the mean drop of the ``targets``
    probability over the ``patch x patch`` windows (every ``stride`` pixels, the last one cut at
    the edge) covering it, when the window is set to ``baseline`` in every channel (Captum's
    ``Occlusion`` on probabilities)."""
    batch, _, height, width = images.shape
    if patch > min(height, width) or patch < 1 or stride < 1:
        raise SpecError(
            f"occlusion: patch {patch} and stride {stride} must be >= 1 and the patch "
            f"no larger than the {height}x{width} images"
        )
    rows = torch.arange(batch, device=images.device)
    clean = model(images).softmax(dim=1)[rows, targets]  # [B]
    drops = torch.zeros(batch, height, width, device=images.device)
    counts = torch.zeros(height, width, device=images.device)
    for top in range(0, height - patch + stride, stride):  # the last window may be cut at the edge
        for left in range(0, width - patch + stride, stride):
            occluded = images.clone()
            occluded[:, :, top : top + patch, left : left + patch] = baseline
            probability = model(occluded).softmax(dim=1)[rows, targets]
            drops[:, top : top + patch, left : left + patch] += (clean - probability)[:, None, None]
            counts[top : top + patch, left : left + patch] += 1
    return drops / counts.clamp_min(1)


class _GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward passes only positive gradients through positive inputs."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inputs)
        return inputs.clamp_min(0)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        (inputs,) = ctx.saved_tensors
        return gradient.clamp_min(0) * (inputs > 0)


@contextmanager
def _guided_relus(model: nn.Module) -> Iterator[None]:
    """Within the block, every ``nn.ReLU`` of ``model`` is a guided ReLU."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise SpecError(f"guided backpropagation: {type(model).__name__} has no nn.ReLU modules")
    handles = [
        relu.register_forward_hook(lambda _m, inputs, _out: _GuidedReLU.apply(inputs[0]))
        for relu in relus
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def guided_backprop(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Guided-backpropagation gradient ``[B, C, H, W]`` of the ``targets`` scores."""
    with _guided_relus(model):
        return saliency(model, images, targets)


# ------------------------------------------------------------------------- CAM and Grad-CAM


@contextmanager
def record_output(model: nn.Module, layer: str) -> Iterator[list[torch.Tensor]]:
    """A list that receives the output of ``model``'s submodule ``layer`` on each forward."""
    try:
        module = model.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        raise SpecError(
            f"layer: {type(model).__name__} has no layer {layer!r}",
            hint="layers: " + ", ".join(names),
        ) from None
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _in, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()


def last_conv_layer(model: nn.Module) -> str:
    """The name of the last ``nn.Conv2d`` of ``model`` (Grad-CAM's default layer)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not names:
        raise SpecError(f"layer: {type(model).__name__} has no Conv2d layer for Grad-CAM")
    return names[-1]


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    *,
    upsample: bool = True,
) -> torch.Tensor:
    """Grad-CAM ``[B, H, W]`` (or ``[B, h, w]`` at the layer's size without ``upsample``):
    ``relu(sum_k mean_xy(d score / d A_k) * A_k)`` over the channels ``A_k`` of ``layer``."""
    with torch.enable_grad(), record_output(model, layer) as outputs:
        scores = class_scores(model, images.detach(), targets)
        activations = outputs[-1]  # [B, k, h, w]
        (gradient,) = torch.autograd.grad(scores.sum(), activations)
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # [B, k, 1, 1]
    cam = (weights * activations.detach()).sum(dim=1).clamp_min(0)  # [B, h, w]
    return _resize(cam, images.shape[-2:]) if upsample else cam


def class_activation_map(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    head: str,
    *,
    upsample: bool = True,
) -> torch.Tensor:
    """CAM ``[B, H, W]``: ``sum_k w[target, k] * A_k`` for a net whose ``head`` (an
    ``nn.Linear``) reads the global average of ``layer``'s channels ``A_k [B, k, h, w]``."""
    linear = model.get_submodule(head)
    with torch.no_grad(), record_output(model, layer) as outputs:
        model(images)
    activations = outputs[-1]
    if (
        not isinstance(linear, nn.Linear)
        or activations.dim() != 4
        or activations.shape[1] != linear.in_features
    ):
        raise SpecError(
            f"cam: needs global pooling of {layer!r} into the linear head {head!r} "
            f"(got {tuple(activations.shape)} into {linear})",
            hint="use grad_cam, which works for any conv layer",
        )
    weights = linear.weight[targets][:, :, None, None]  # [B, k, 1, 1]
    cam = (weights * activations).sum(dim=1)  # [B, h, w]
    return _resize(cam, images.shape[-2:]) if upsample else cam


def global_pool_layer(model: nn.Module, images: torch.Tensor, head: str) -> str | None:
    """The last layer whose 4-D output (spatial size > 1) has as many channels as ``head`` has
    inputs: the layer CAM reads, or None when the net has no such global-pooling structure."""
    in_features = model.get_submodule(head).in_features
    found: list[str] = []
    hooks = [
        module.register_forward_hook(
            lambda _m, _in, out, name=name: (
                found.append(name)
                if isinstance(out, torch.Tensor)
                and out.dim() == 4
                and out.shape[1] == in_features
                and out.shape[-1] * out.shape[-2] > 1
                else None
            )
        )
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return found[-1] if found else None


def _resize(maps: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``[B, h, w] -> [B, H, W]`` by bilinear interpolation."""
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[
        :, 0
    ]


def pixel_map(attribution: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, H, W]``: the largest absolute value over channels."""
    return attribution.abs().amax(dim=1)
