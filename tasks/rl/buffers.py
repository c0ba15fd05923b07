"""The replay buffer of off-policy tasks (DQN): a ring of the last ``capacity`` steps of ``N``
environments, stored where the rollouts arrive (the task's device), sampled without reading
anything back to the host.

Rows are time steps, columns environments, so ``n`` consecutive rows of a column are ``n``
consecutive steps of one environment: the n-step windows that :func:`n_step_targets` needs.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch

from visionflow.batches import RolloutBatch
from visionflow.batches.rl import Transitions

FIELDS = tuple(f.name for f in fields(Transitions))


class ReplayBuffer:
    """About ``capacity`` transitions: the last ``capacity // N`` steps of each of ``N``
    environments; :meth:`add` a rollout ``[T, N]``, :meth:`sample` ``B`` windows of ``n_steps``."""

    def __init__(self, capacity: int, n_steps: int = 1):
        self.capacity, self.n_steps = capacity, n_steps
        self.storage: dict[str, torch.Tensor] = {}
        self.rows = 0  # steps kept per environment, set by the first rollout
        self.cursor = 0  # the next row to write
        self.size = 0  # rows written, at most ``rows``

    def __len__(self) -> int:
        """Transitions stored (rows times environments)."""
        columns = self.storage["actions"].shape[1] if self.storage else 0
        return self.size * columns

    def state_dict(self) -> dict[str, Any]:
        """The stored steps and the ring's position: tensors and ints, which a checkpoint
        loaded with ``weights_only=True`` restores."""
        position = {"rows": self.rows, "cursor": self.cursor, "size": self.size}
        return {"storage": dict(self.storage), **position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (:meth:`state_dict` of a buffer of the same capacity)."""
        self.storage = dict(state["storage"])
        self.rows, self.cursor, self.size = state["rows"], state["cursor"], state["size"]

    def add(self, batch: RolloutBatch) -> None:
        """Append the ``T`` rows of ``batch``, overwriting the oldest once full."""
        steps = batch.actions.shape[0]
        if self.storage and self.storage["actions"].device != batch.actions.device:
            self.storage = {name: t.to(batch.actions.device) for name, t in self.storage.items()}
        if not self.storage:
            self.rows = max(self.n_steps, self.capacity // batch.actions.shape[1])
            self.storage = {
                name: torch.zeros(
                    (self.rows, *getattr(batch, name).shape[1:]),
                    dtype=getattr(batch, name).dtype,
                    device=batch.actions.device,
                )
                for name in FIELDS
            }
        rows = (self.cursor + torch.arange(steps)) % self.rows
        rows = rows.to(batch.actions.device)
        for name in FIELDS:
            self.storage[name][rows] = getattr(batch, name)
        self.cursor = (self.cursor + steps) % self.rows
        self.size = min(self.size + steps, self.rows)

    def end_episodes_at_newest_row(self) -> None:
        """Mark every environment's newest stored step as an episode's end (a truncation: its
        next observation still bootstraps), for environments that restart from a reset, as after
        a resume: no n-step window then runs from before the restart into what comes after."""
        if self.size:
            self.storage["episode_ends"][(self.cursor - 1) % self.rows] = True

    def can_sample(self) -> bool:
        return self.size >= self.n_steps

    def sample(self, batch_size: int) -> Transitions:
        """``batch_size`` windows, uniform over the windows whose ``n`` rows are all written (none
        runs past the newest row into the oldest): ``observations`` ``[B, *obs]`` and ``actions``
        ``[B]`` of each window's first step; ``rewards``, ``terminated``, ``episode_ends``
        ``[B, n]``; ``next_observations`` ``[B, n, *obs]`` after every step of the window."""
        columns = self.storage["actions"].shape[1]
        device = self.storage["actions"].device
        first = 0 if self.size < self.rows else self.cursor  # the oldest row
        starts = torch.randint(0, self.size - self.n_steps + 1, (batch_size,), device=device)
        rows = (first + starts[:, None] + torch.arange(self.n_steps, device=device)) % self.rows
        envs = torch.randint(0, columns, (batch_size,), device=device)[:, None]  # [B, 1]
        window = {name: self.storage[name][rows, envs] for name in FIELDS}  # [B, n, ...]
        return Transitions(
            observations=window["observations"][:, 0],
            actions=window["actions"][:, 0],
            rewards=window["rewards"],
            next_observations=window["next_observations"],
            terminated=window["terminated"],
            episode_ends=window["episode_ends"],
        )
