"""Images made by optimizing the input of a trained net: class visualization, feature inversion,
DeepDream, and Gram-matrix texture synthesis / neural style transfer (Gatys et al. 2016).

All images are ``[B, C, H, W]`` in the net's input space (normalized as its data is); layers are
named as in ``model.named_modules()``. The nets are used as they are (call ``model.eval()``
first); their parameters get no gradients. Each function is deterministic given ``generator``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from visionflow.errors import CheckpointError, SpecError
from visionflow.tasks.understanding.attribution import record_output


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Within the block, ``model``'s parameters do not require (or collect) gradients."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


def _jitter(
    images: torch.Tensor, pixels: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``images`` rolled by a random shift of up to ``pixels`` in each direction, and the shift."""
    if pixels == 0:
        return images, (0, 0)
    dy, dx = torch.randint(-pixels, pixels + 1, (2,), generator=generator).tolist()
    return images.roll((dy, dx), dims=(-2, -1)), (dy, dx)


def _ascent_step(images: torch.Tensor, objective: torch.Tensor, lr: float) -> torch.Tensor:
    """``images + lr * g / mean|g|`` for the gradient ``g`` of ``objective`` (a scalar)."""
    (gradient,) = torch.autograd.grad(objective, images)
    return (images + lr * gradient / gradient.abs().mean().clamp_min(1e-12)).detach()


def class_visualization(
    model: nn.Module,
    target: int,
    shape: Sequence[int],
    *,
    steps: int = 100,
    lr: float = 0.05,
    l2: float = 1e-3,
    jitter: int = 2,
    blur_every: int = 10,
    blur_sigma: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """An image ``[1, C, H, W]`` (``shape = (C, H, W)``) that maximizes the ``target`` logit
    minus ``l2 * ||image||^2`` by gradient ascent, with random jitter each step and a Gaussian
    blur every ``blur_every`` steps (Simonyan et al. 2014; Yosinski et al. 2015)."""
    from torchvision.transforms.functional import gaussian_blur

    image = 0.1 * torch.randn((1, *shape), generator=generator)
    for step in range(steps):
        shifted, (dy, dx) = _jitter(image, jitter, generator)
        with torch.enable_grad():
            shifted.requires_grad_(True)
            objective = model(shifted)[0, target] - l2 * shifted.square().sum()
            shifted = _ascent_step(shifted, objective, lr)
        image = shifted.roll((-dy, -dx), dims=(-2, -1))
        if blur_every and (step + 1) % blur_every == 0:
            image = gaussian_blur(image, kernel_size=3, sigma=blur_sigma)
    return image


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between neighbouring pixels of ``[B, C, H, W]`` (a scalar)."""
    return (images[..., 1:, :] - images[..., :-1, :]).square().sum() + (
        images[..., :, 1:] - images[..., :, :-1]
    ).square().sum()


def feature_inversion(
    model: nn.Module,
    layer: str,
    images: torch.Tensor,
    *,
    steps: int = 200,
    lr: float = 0.05,
    tv_weight: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images ``[B, C, H, W]`` whose ``layer`` features match those of ``images`` (relative
    squared error, plus ``tv_weight`` total variation), from noise, by Adam (Mahendran & Vedaldi
    2015)."""
    with torch.no_grad(), record_output(model, layer) as outputs:
        model(images)
        wanted = outputs.pop().detach()
    result = (0.1 * torch.randn(images.shape, generator=generator)).requires_grad_(True)
    optimizer = torch.optim.Adam([result], lr=lr)
    with torch.enable_grad(), frozen(model), record_output(model, layer) as outputs:
        for _ in range(steps):
            optimizer.zero_grad()
            model(result)
            error = (outputs.pop() - wanted).square().sum() / wanted.square().sum().clamp_min(1e-12)
            (error + tv_weight * total_variation(result)).backward()
            optimizer.step()
    return result.detach()


def deepdream(
    model: nn.Module,
    layer: str,
    images: torch.Tensor,
    *,
    steps: int = 20,
    lr: float = 0.02,
    jitter: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``images [B, C, H, W]`` changed by gradient ascent on the squared activations of
    ``layer``: whatever the layer sees in them, amplified (Mordvintsev et al. 2015)."""
    image = images.detach().clone()
    with record_output(model, layer) as outputs:
        for _ in range(steps):
            shifted, (dy, dx) = _jitter(image, jitter, generator)
            with torch.enable_grad():
                shifted.requires_grad_(True)
                model(shifted)
                shifted = _ascent_step(shifted, outputs.pop().square().mean(), lr)
            image = shifted.roll((-dy, -dx), dims=(-2, -1))
    return image


# -------------------------------------------------------------------- texture and style


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``[B, k, h, w] -> [B, k, k]``: channel correlations, divided by ``k * h * w``."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def _layer_outputs(
    model: nn.Module, images: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """``{layer: output}`` of one forward pass of ``images``."""
    found: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _in, out, name=name: found.__setitem__(name, out)
        )
        for name in layers
    ]
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return found


def style_transfer(
    model: nn.Module,
    content: torch.Tensor | None,
    style: torch.Tensor,
    *,
    content_layer: str,
    style_layers: Sequence[str],
    content_weight: float = 1.0,
    style_weight: float = 1e3,
    tv_weight: float = 0.0,
    steps: int = 100,
    optimizer: Literal["lbfgs", "adam"] = "lbfgs",
    lr: float = 0.05,
    shape: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """An image ``[1, C, H, W]`` with the ``content_layer`` features of ``content [1, C, H, W]``
    and the Gram matrices (on ``style_layers``) of ``style [1, C, H', W']``: neural style
    transfer. With ``content`` None it is texture synthesis from noise of ``shape``
    ``(C, H, W)`` (default: the style image's)."""
    for name in (content_layer, *style_layers):
        _check_layer(model, name)
    with torch.no_grad():
        style_grams = {
            name: gram_matrix(out)
            for name, out in _layer_outputs(model, style, style_layers).items()
        }
        wanted = (
            _layer_outputs(model, content, [content_layer])[content_layer]
            if content is not None
            else None
        )
    start = (
        content
        if content is not None
        else 0.1 * torch.randn((1, *(shape or style.shape[1:])), generator=generator)
    )
    image = start.detach().clone().requires_grad_(True)

    def loss() -> torch.Tensor:
        outputs = _layer_outputs(model, image, [*style_layers, content_layer])
        total = style_weight * sum(
            (gram_matrix(outputs[name]) - gram).square().sum() for name, gram in style_grams.items()
        )
        if wanted is not None:
            total = total + content_weight * (outputs[content_layer] - wanted).square().mean()
        return total + tv_weight * total_variation(image)

    with frozen(model):
        _minimize(loss, image, steps, optimizer, lr)
    return image.detach()


def _minimize(loss, image: torch.Tensor, steps: int, optimizer: str, lr: float) -> None:
    """``steps`` steps of L-BFGS (one closure evaluation budget of 20 each) or Adam on ``image``."""
    with torch.enable_grad():
        if optimizer == "lbfgs":
            solver = torch.optim.LBFGS([image], lr=1.0, max_iter=20)
        else:
            solver = torch.optim.Adam([image], lr=lr)

        def closure() -> torch.Tensor:
            solver.zero_grad()
            value = loss()
            value.backward()
            return value

        for _ in range(steps if optimizer == "adam" else max(1, steps // 20)):
            solver.step(closure)


def _check_layer(model: nn.Module, name: str) -> None:
    try:
        model.get_submodule(name)
    except AttributeError:
        raise SpecError(f"layer: {type(model).__name__} has no layer {name!r}") from None


def load_vgg(weights: str | Path, name: Literal["vgg11", "vgg16", "vgg19"] = "vgg16") -> nn.Module:
    """torchvision's ``name`` with the state_dict in the local file ``weights`` (read with
    ``weights_only=True``), in eval mode; its ``features.<i>`` layers feed style transfer."""
    from torchvision.models import get_model

    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: VGG weights file is missing",
            hint="download torchvision's vgg16 state_dict once and give its path",
        )
    model = get_model(name, weights=None)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:
        raise CheckpointError(
            f"{path}: not a {name} state_dict ({str(error).splitlines()[0]})"
        ) from None
    return model.eval()
