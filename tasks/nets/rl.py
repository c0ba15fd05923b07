"""Torsos of the RL tasks: observations -> features; the tasks add their heads (Q-values, policy
logits, state values).

A builder is ``(*, observation_shape, **net_args) -> nn.Module`` mapping observations
``[B, *observation_shape]`` to features ``[B, F]``, with ``module.out_features = F``.
``rl_mlp`` takes flat vectors (CartPole's 4 numbers); ``rl_conv`` takes pixel stacks ``[C, H, W]``
(the small encoder of DrQ/RAD on the 84 px Atari frames, scaled to any size).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.classic import ACTIVATIONS, Activation
from visionflow.tasks.nets.families import RL_NETS, checked_builder


class Torso(nn.Sequential):
    """``nn.Sequential`` over observations of rank ``observation_rank`` that states its feature
    width ``out_features``; leading dimensions beyond the batch (``[T, N, *obs]``) are kept:
    ``[..., *obs] -> [..., out_features]``."""

    def __init__(self, *layers: nn.Module, observation_rank: int, out_features: int):
        super().__init__(*layers)
        self.observation_rank, self.out_features = observation_rank, out_features

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        leading = observations.shape[: observations.dim() - self.observation_rank]
        features = super().forward(observations.reshape(-1, *observations.shape[len(leading) :]))
        return features.reshape(*leading, self.out_features)


@RL_NETS.register("rl_mlp")
def mlp(
    *,
    observation_shape: tuple[int, ...],
    hidden_sizes: list[int] | tuple[int, ...] = (64, 64),
    activation: Activation = "tanh",
) -> nn.Module:
    """Fully connected layers over the flattened observation: ``[B, *obs] -> [B, hidden[-1]]``."""
    if not hidden_sizes or any(size < 1 for size in hidden_sizes):
        raise SpecError(f"net_args.hidden_sizes: expected positive sizes, got {hidden_sizes}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(observation_shape).prod()) if observation_shape else 1
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    return Torso(*layers, observation_rank=len(observation_shape), out_features=width)


@RL_NETS.register("rl_conv")
def conv(
    *,
    observation_shape: tuple[int, ...],
    channels: list[int] | tuple[int, ...] = (32, 32),
    features: int = 256,
) -> nn.Module:
    """3x3 convolutions (the first with stride 2), then a linear layer to ``features``:
    ``[B, C, H, W] -> [B, features]``."""
    if len(observation_shape) != 3:
        raise SpecError(
            f"net: 'rl_conv' needs pixel observations [C, H, W], got shape "
            f"{list(observation_shape)}",
            hint="use net: rl_mlp, or data.args.pixels: true",
        )
    layers: list[nn.Module] = []
    width = observation_shape[0]
    for index, size in enumerate(channels):
        layers += [nn.Conv2d(width, size, 3, stride=2 if index == 0 else 1), nn.ReLU()]
        width = size
    body = nn.Sequential(*layers, nn.Flatten())
    with torch.no_grad():
        flat = body(torch.zeros(1, *observation_shape)).shape[1]
    return Torso(
        *body,
        nn.Linear(flat, features),
        nn.LayerNorm(features),
        nn.Tanh(),
        observation_rank=3,
        out_features=features,
    )


def build_torso(
    name: str, observation_shape: tuple[int, ...], net_args: dict[str, Any] | None
) -> Torso:
    """The registered torso ``name``; errors name ``net`` or ``net_args.<key>``."""
    net_args = dict(net_args or {})
    builder = checked_builder(RL_NETS, name, net_args, common_args=1)
    return builder(observation_shape=tuple(observation_shape), **net_args)
