"""Reinforcement-learning batches, and the one hook between an RL task and its datamodule.

The environment lives on the data side; the policy on the task side. They meet here:

- :class:`Actor` is what a task offers the data side: ``act(observations, explore)``. During a
  fit the datamodule steps its vectorized environments with the task it is trained with (Lightning's
  ``trainer.lightning_module``) and yields :class:`RolloutBatch` es of what happened.
- :class:`EpisodeBatch` is what the data side offers a task for evaluation: seeds, and a player
  that runs one episode per seed with a given actor (greedy). The task calls ``batch.play(self)``,
  so ``validate``, ``test`` and the sharded ``evaluate`` stage need no trainer.

Neither side imports the other; ``docs/rl.md`` says what runs where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import torch

from visionflow.batches.core import Batch, DatasetInfo

ActionSpace = Literal["discrete", "continuous"]


@dataclass(frozen=True)
class RLDatasetInfo(DatasetInfo):
    """``DatasetInfo`` of an environment: ``num_classes`` is the number of discrete actions
    (the action dimension of a continuous space), ``class_names`` the actions' names;
    ``observation_shape`` one observation's shape (pixels: ``(C, H, W)``, and then
    ``in_channels``/``image_size`` are set); ``action_space`` discrete or continuous;
    ``environment`` the gymnasium id, for error messages."""

    observation_shape: tuple[int, ...] = ()
    action_space: ActionSpace = "discrete"
    environment: str = ""


@dataclass
class ActorOutput:
    """``actions`` ``[N]`` int64; for policy-gradient actors also ``log_probs`` ``[N]`` (of the
    chosen actions); ``values`` ``[N]`` (the critic's estimate) for an actor that keeps them."""

    actions: torch.Tensor
    log_probs: torch.Tensor | None = None
    values: torch.Tensor | None = None


class Actor(Protocol):
    """A policy the data side can act with: a task, on its own ``device``."""

    device: torch.device

    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        """Actions for ``observations`` ``[N, *observation_shape]`` float32; ``explore`` samples
        (epsilon-greedy, or from the policy), else the greedy action."""
        ...


@dataclass
class Transitions:
    """What happened in steps of environments: ``observations``, the ``actions`` taken,
    ``rewards``, ``next_observations``, ``terminated`` (no bootstrap from the next state) and
    ``episode_ends`` (terminated or truncated). A :class:`RolloutBatch` holds them time-major;
    a replay buffer's sample holds windows of steps."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    episode_ends: torch.Tensor

    def mapped(self, view: Callable[[torch.Tensor], torch.Tensor]) -> Transitions:
        """These transitions with ``view`` applied to the observations and the next
        observations (an augmentation: DrQ shifts both, independently)."""
        return replace(
            self,
            observations=view(self.observations),
            next_observations=view(self.next_observations),
        )


@dataclass
class RolloutBatch(Batch, Transitions):
    """``T`` steps of ``N`` environments, time-major.

    ``observations`` and ``next_observations`` float32 ``[T, N, *observation_shape]`` (the next
    observation is the episode's last one where it ended, not the reset that followed);
    ``actions`` int64 ``[T, N]``; ``rewards`` float32 ``[T, N]``; ``terminated`` bool ``[T, N]``
    (no bootstrap from the next state); ``episode_ends`` bool ``[T, N]`` (terminated or
    truncated: returns stop here); ``log_probs`` and ``values`` ``[T, N]`` from the actor, or None;
    ``episode_returns`` the returns of the episodes that ended in these steps (host floats);
    ``augment`` the data side's augmentation of pixel observations (``[..., C, H, W] -> same
    shape``, a random shift per image, as DrQ/RAD), which the task applies to the observations it
    learns from, or None.

    ``observations, actions = batch`` unpacks it; ``len(batch)`` is ``T * N`` transitions."""

    log_probs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    episode_returns: list[float] = field(default_factory=list)
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None

    info_type = RLDatasetInfo

    def __len__(self) -> int:
        return int(self.actions.numel())


@dataclass(frozen=True)
class Episode:
    """One played episode: its ``seed``, ``total_reward`` (undiscounted return), ``length`` in
    steps and the ``rewards`` of every step."""

    seed: int
    total_reward: float
    length: int
    rewards: tuple[float, ...] = ()


class EpisodePlayer(Protocol):
    """Plays one episode per seed with ``actor`` (greedy), in seed order."""

    def play(self, actor: Actor, seeds: list[int]) -> list[Episode]: ...


@dataclass
class EpisodeBatch(Batch):
    """``seeds`` of evaluation episodes and the ``player`` of the environment they run in.

    ``seeds, player = batch`` unpacks it; ``batch.play(actor)`` runs the episodes."""

    seeds: list[int]
    player: EpisodePlayer

    info_type = RLDatasetInfo

    def play(self, actor: Actor) -> list[Episode]:
        return self.player.play(actor, self.seeds)
