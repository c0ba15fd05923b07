"""What a trained classifier's layers respond to: first-layer filters, maximally activating
patches of a unit, nearest neighbours and 2-D embeddings (PCA, t-SNE) of last-layer features.

Images are ``[N, C, H, W]`` as the net takes them; layers are named as in
``model.named_modules()`` (``features.3``, ``layer4``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.understanding.attribution import record_output


def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """The weights ``[F, C, kh, kw]`` of the first ``nn.Conv2d`` of ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().clone()
    raise SpecError(f"filters: {type(model).__name__} has no Conv2d layer")


@torch.no_grad()
def layer_activations(
    model: nn.Module, images: torch.Tensor, layer: str, batch_size: int = 256
) -> torch.Tensor:
    """The output of ``layer`` for every image, concatenated: ``[N, ...]``."""
    chunks = []
    with record_output(model, layer) as outputs:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
            chunks.append(outputs.pop().detach())
    return torch.cat(chunks)


@torch.no_grad()
def head_inputs(
    model: nn.Module, images: torch.Tensor, head: str, batch_size: int = 256
) -> torch.Tensor:
    """The last-layer features ``[N, D]``: what the linear ``head`` reads for each image."""
    chunks: list[torch.Tensor] = []
    handle = model.get_submodule(head).register_forward_pre_hook(
        lambda _m, inputs: chunks.append(inputs[0].detach().flatten(1))
    )
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
    finally:
        handle.remove()
    return torch.cat(chunks)


def top_activating_patches(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    unit: int,
    *,
    count: int = 9,
    patch: int = 12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` image patches ``[count, C, patch, patch]`` around the positions where channel
    ``unit`` of ``layer`` fires most (each position mapped to the input by the layer's stride),
    and those activations ``[count]``, highest first."""
    activations = layer_activations(model, images, layer)  # [N, k, h, w]
    if activations.dim() != 4 or not 0 <= unit < activations.shape[1]:
        raise SpecError(
            f"unit: {layer!r} has outputs {tuple(activations.shape[1:])}, so unit "
            f"{unit} is not one of its channels"
        )
    _, _, height, width = images.shape
    patch = min(patch, height, width)
    unit_maps = activations[:, unit]  # [N, h, w]
    values, flat = unit_maps.flatten().topk(min(count, unit_maps.numel()))
    rows, cols = unit_maps.shape[1:]
    image_index = flat // (rows * cols)
    centre_y = ((flat % (rows * cols)) // cols + 0.5) * height / rows
    centre_x = ((flat % cols) + 0.5) * width / cols
    patches = []
    for index, y, x in zip(image_index.tolist(), centre_y.tolist(), centre_x.tolist()):
        top = min(max(int(y) - patch // 2, 0), height - patch)
        left = min(max(int(x) - patch // 2, 0), width - patch)
        patches.append(images[index, :, top : top + patch, left : left + patch])
    return torch.stack(patches), values


def nearest_neighbours(
    queries: torch.Tensor, gallery: torch.Tensor, k: int = 5, exclude_self: bool = False
) -> torch.Tensor:
    """Indices ``[Q, k]`` of the ``k`` gallery rows ``[N, D]`` nearest (L2) to each query
    ``[Q, D]``, nearest first; ``exclude_self`` skips gallery row ``q`` for query ``q``."""
    distances = torch.cdist(queries.float(), gallery.float())  # [Q, N]
    if exclude_self:
        distances[torch.arange(len(queries)), torch.arange(len(queries))] = float("inf")
    return distances.topk(min(k, gallery.shape[0]), dim=1, largest=False).indices


def embed_2d(features: torch.Tensor, method: Literal["pca", "tsne"], seed: int = 0) -> torch.Tensor:
    """A 2-D embedding ``[N, 2]`` of ``features [N, D]`` by scikit-learn's PCA or t-SNE."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    values = features.double().numpy()
    if method == "pca":
        points = PCA(n_components=2, random_state=seed).fit_transform(values)
    else:
        perplexity = float(min(30, max(2, (len(values) - 1) // 3)))
        points = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(values)
    return torch.from_numpy(points).float()
