"""Transfer learning: which module is a network's head, freezing the backbone, loading weights.

Every network in ``NETS`` names its classification head, the final ``nn.Linear`` that maps features
to ``num_classes`` logits, with :func:`mark_head`. Everything else is the *backbone*. This one
convention gives freeze_backbone, backbone_lr_scale and head replacement for every network.

Loading weights (:func:`load_weights`) is strict outside the head: a missing, unexpected or
reshaped backbone key is an error that lists a few of them. A head whose shape differs (the file
was trained for another number of classes) is left freshly initialized: that is fine-tuning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from visionflow.errors import CheckpointError, SpecError

HEAD_ATTRIBUTE = "head_path"
SHOWN_KEYS = 5
IGNORED_PREFIXES = ("aux1.", "aux2.")


def mark_head(model: nn.Module, path: str) -> nn.Module:
    """Record that ``model.get_submodule(path)``, an ``nn.Linear``, is the head; return model."""
    if not isinstance(model.get_submodule(path), nn.Linear):
        raise TypeError(f"the head {path!r} of {type(model).__name__} must be an nn.Linear")
    setattr(model, HEAD_ATTRIBUTE, path)
    return model


def head_path(model: nn.Module) -> str:
    path = getattr(model, HEAD_ATTRIBUTE, None)
    if path is None:
        raise TypeError(
            f"{type(model).__name__} does not name its head: its builder must call "
            "visionflow.tasks.nets.transfer.mark_head(model, 'path.to.linear')"
        )
    return path


def split_backbone_head(model: nn.Module) -> tuple[list[nn.Parameter], nn.Linear]:
    """``(backbone parameters, head module)``: the head is the final classifier ``nn.Linear``."""
    head = model.get_submodule(head_path(model))
    head_ids = {id(p) for p in head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return backbone, head


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the head for a fresh ``nn.Linear(in_features, num_classes)``; return the new head."""
    path = head_path(model)
    old = model.get_submodule(path)
    new = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    model.set_submodule(path, new)
    return new


def freeze_backbone(model: nn.Module) -> None:
    """Stop gradients to every backbone parameter and freeze its BatchNorm statistics."""
    backbone, _ = split_backbone_head(model)
    for param in backbone:
        param.requires_grad_(False)
    freeze_batchnorm_statistics(model)


def freeze_batchnorm_statistics(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (use, do not update, running statistics).

    Any later ``model.train()`` switches them back, so a task with a frozen backbone calls this
    again from its own ``train()``. Heads are ``nn.Linear``: all BatchNorm is backbone.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_state` did: ``head_replaced`` when the head was left freshly initialized."""

    loaded_keys: int
    head_replaced: bool


def load_weights(model: nn.Module, path: str | Path, *, key: str = "weights") -> LoadReport:
    """Load a local state_dict file (``torch.save(model.state_dict())``, or a VisionFlow/Lightning
    checkpoint whose ``state_dict`` keys start with ``net.``) into ``model``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"{key}: {path}: no such file",
            hint="give the path of a state_dict saved with torch.save",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{key}: {path}: cannot load it with torch.load(weights_only=True): {reason}"
        ) from None
    return load_state(model, _unwrap_checkpoint(state, f"{key}: {path}"), source=f"{key}: {path}")


def _unwrap_checkpoint(state: object, source: str) -> dict[str, torch.Tensor]:
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
        if all(k.startswith("net.") for k in state):
            state = {k.removeprefix("net."): v for k, v in state.items()}
    tensors_only = isinstance(state, Mapping) and all(
        isinstance(v, torch.Tensor) for v in state.values()
    )
    if not tensors_only:
        raise CheckpointError(f"{source}: not a state_dict (a mapping of names to tensors)")
    return dict(state)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> LoadReport:
    """Copy ``state`` into ``model``: strict for the backbone; the head is left freshly initialized
    when its shape differs. Keys of torchvision's GoogLeNet auxiliary classifiers are ignored
    (VisionFlow builds GoogLeNet without them).
    """
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(IGNORED_PREFIXES)}
    head_prefix = head_path(model) + "."
    reshaped = sorted(
        k for k in state.keys() & expected.keys() if state[k].shape != expected[k].shape
    )
    head_replaced = any(k.startswith(head_prefix) for k in reshaped)
    if head_replaced:  # the file's head classifies other classes: keep the fresh one
        state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
        expected = {k: v for k, v in expected.items() if not k.startswith(head_prefix)}
    problems = [
        _listing("missing", sorted(expected.keys() - state.keys())),
        _listing("unexpected", sorted(state.keys() - expected.keys())),
        _listing(
            "shape mismatch",
            [
                f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                for k in reshaped
                if k in state
            ],
        ),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not fit this network: " + "; ".join(problems),
            hint="were they saved from the same `net` and net_args?",
        )
    model.load_state_dict(state, strict=False)
    return LoadReport(loaded_keys=len(state), head_replaced=head_replaced)


def _listing(kind: str, keys: list[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
    return f"{len(keys)} {kind} key(s): {shown}"


def load_pretrained(model: nn.Module, net: str) -> LoadReport:
    """Download (or take from the torch hub cache) torchvision's default weights for ``net``."""
    from torchvision.models import get_model_weights, list_models

    if net not in list_models():
        raise SpecError(
            f"pretrained: net {net!r} has no torchvision weights",
            hint="pass `weights: /path/to/state_dict.pt` instead",
        )
    weights = get_model_weights(net).DEFAULT
    try:
        state = torch.hub.load_state_dict_from_url(
            weights.url, map_location="cpu", progress=False, weights_only=True
        )
    except Exception as error:
        raise CheckpointError(
            f"pretrained: cannot download the torchvision weights of {net!r} "
            f"({type(error).__name__}: {str(error).strip()[:120]})",
            hint=f"offline? download {weights.url} elsewhere and pass `weights: /path/to/file.pth`",
        ) from None
    return load_state(model, state, source=f"torchvision weights {weights}")
