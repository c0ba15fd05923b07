"""Deep Q-learning (Mnih et al. 2015) with Double DQN, dueling heads and n-step returns.

    task = DQNTask(num_classes=2, observation_shape=[4], double_dqn=True, dueling=False)
    # with data: {name: experience, args: {environment: CartPole-v1, num_envs: 4, rollout_steps: 1}}

Each training step stores the rollout it receives (``T x N`` steps collected with this task's
epsilon-greedy policy) in the replay buffer and, once ``learning_starts`` transitions are in,
takes one gradient step on ``batch_size`` sampled windows of ``n_steps``: the Huber loss between
``Q(s, a)`` and ``sum_k gamma^k r_k + gamma^n max_a' Q_target(s_n, a')`` (Double DQN: the online
network picks ``a'``, the target network values it). The target network copies the online one
every ``target_sync_interval`` gradient steps. Epsilon falls linearly from ``epsilon_start`` to
``epsilon_end`` over the first ``exploration_steps`` environment steps.

Where the rollouts carry an augmentation (pixels: a random shift, ``docs/rl.md``), the sampled
observations and next observations go through it, each its own shift (DrQ). Checkpoints hold the
replay buffer and the update count, so ``--resume`` continues with the same experience.

Logged: ``train/loss``, ``train/epsilon``, ``train/episode_return``, ``train/env_steps`` and the
episode returns of validation and test (:mod:`visionflow.tasks.rl.base`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visionflow.batches import ActorOutput, RolloutBatch
from visionflow.batches.rl import Transitions
from visionflow.registry import TASKS
from visionflow.tasks.nets.rl import build_torso
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.rl.base import RLTask, refuse_first_failure
from visionflow.tasks.rl.buffers import ReplayBuffer
from visionflow.tasks.rl.returns import n_step_targets


class QNetwork(nn.Module):
    """``observations [B, *obs] -> Q-values [B, A]``; dueling: ``V(s) + A(s, a) - mean_a A(s, a)``."""

    def __init__(self, torso: nn.Module, num_actions: int, dueling: bool):
        super().__init__()
        self.torso = torso
        self.advantage = nn.Linear(torso.out_features, num_actions)
        self.value = nn.Linear(torso.out_features, 1) if dueling else None

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        features = self.torso(observations)  # [B, F]
        advantages = self.advantage(features)  # [B, A]
        if self.value is None:
            return advantages
        return self.value(features) + advantages - advantages.mean(dim=1, keepdim=True)


@TASKS.register("dqn", batch=RolloutBatch)
class DQNTask(RLTask):
    """Deep Q-network on discrete actions: replay buffer, target network, epsilon-greedy
    exploration, Double DQN and dueling options (see the module docstring)."""

    algorithm = "DQN"

    def __init__(
        self,
        dueling: bool = False,
        double_dqn: bool = True,
        gamma: float = 0.99,
        n_steps: int = 1,
        buffer_size: int = 50_000,
        batch_size: int = 64,
        learning_starts: int = 1000,
        target_sync_interval: int = 100,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.05,
        exploration_steps: int = 10_000,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(name="none"),
        **environment: Any,
    ):
        super().__init__(optimizer, scheduler, **environment)
        self.save_hyperparameters()
        _check_arguments(self.hparams)
        self.q_network = QNetwork(build_torso(*self.torso_args), self.num_actions, dueling)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.buffer = ReplayBuffer(buffer_size, n_steps)
        self.updates = 0

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``observations [B, *obs] -> Q-values [B, A]``."""
        return self.q_network(observations)

    @property
    def epsilon(self) -> float:
        """The exploration rate after ``env_steps`` environment steps (linear decay)."""
        h = self.hparams
        remaining = max(0.0, 1.0 - self.env_steps / max(1, h.exploration_steps))
        return h.epsilon_end + (h.epsilon_start - h.epsilon_end) * remaining

    @torch.no_grad()
    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        """Greedy actions ``[N]``, or epsilon-greedy ones when exploring (counted as env steps)."""
        greedy = self.q_network(observations).argmax(dim=1)  # [N]
        if not explore:
            return ActorOutput(greedy)
        random_actions = torch.randint_like(greedy, self.hparams.num_classes)
        explores = torch.rand(greedy.shape, device=greedy.device) < self.epsilon
        self.env_steps += len(greedy)
        return ActorOutput(torch.where(explores, random_actions, greedy))

    def training_step(self, batch: RolloutBatch, batch_idx: int) -> torch.Tensor | None:
        self.count_experience(batch)
        self.buffer.add(batch)
        if len(self.buffer) < self.hparams.learning_starts or not self.buffer.can_sample():
            return None
        sample = self.buffer.sample(self.hparams.batch_size)
        loss = self.td_loss(sample.mapped(lambda frames: self.learning_view(batch, frames)))
        self.log(
            "train/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=self.hparams.batch_size,
            sync_dist=True,
        )
        return loss

    def td_loss(self, sample: Transitions) -> torch.Tensor:
        """Huber loss between ``Q(s, a)`` ``[B]`` and the n-step (Double) DQN target ``[B]``."""
        h = self.hparams
        returns, discount, last = n_step_targets(
            sample.rewards, sample.terminated, sample.episode_ends, h.gamma
        )
        rows = torch.arange(len(last), device=last.device)
        following = sample.next_observations[rows, last]  # [B, *obs]
        with torch.no_grad():
            target_q = self.target_network(following)  # [B, A]
            if h.double_dqn:
                chosen = self.q_network(following).argmax(dim=1, keepdim=True)
                next_value = target_q.gather(1, chosen)[:, 0]
            else:
                next_value = target_q.max(dim=1).values
            target = returns + discount * next_value
        q = self.q_network(sample.observations).gather(1, sample.actions[:, None])[:, 0]
        return F.smooth_l1_loss(q, target)

    def on_train_batch_end(self, outputs: Any, batch: RolloutBatch, batch_idx: int) -> None:
        """Count the gradient step just taken (if any); sync the target every interval. A
        skipped step (``training_step`` returned None) reaches here as ``{}`` in a fit."""
        if not outputs:
            return
        self.updates += 1
        if self.updates % self.hparams.target_sync_interval == 0:
            self.sync_target()

    def sync_target(self) -> None:
        """Copy the online network's weights into the target network."""
        self.target_network.load_state_dict(self.q_network.state_dict())

    def on_train_epoch_end(self) -> None:
        self.log("train/epsilon", self.epsilon, sync_dist=True)
        super().on_train_epoch_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also the replay buffer and the update count, so ``--resume`` learns on from the same
        experience (``buffer_size`` transitions of observations, twice: mind the disk for
        pixels)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["replay_buffer"] = self.buffer.state_dict()
        checkpoint["dqn_updates"] = self.updates

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "replay_buffer" in checkpoint:
            self.buffer.load_state_dict(checkpoint["replay_buffer"])
            self.buffer.end_episodes_at_newest_row()  # the environments restart from a reset
        self.updates = int(checkpoint.get("dqn_updates", 0))


def _check_arguments(h: Any) -> None:
    """Raise SpecError naming the first bad argument."""
    checks = [
        (0 < h.gamma <= 1, "gamma", f"must be in (0, 1], got {h.gamma}"),
        (h.n_steps >= 1, "n_steps", f"must be >= 1, got {h.n_steps}"),
        (h.batch_size >= 1, "batch_size", f"must be >= 1, got {h.batch_size}"),
        (
            h.buffer_size >= max(h.batch_size, h.n_steps),
            "buffer_size",
            f"must hold at least batch_size and n_steps, got {h.buffer_size}",
        ),
        (h.learning_starts >= 0, "learning_starts", f"must be >= 0, got {h.learning_starts}"),
        (
            h.target_sync_interval >= 1,
            "target_sync_interval",
            f"must be >= 1, got {h.target_sync_interval}",
        ),
        (
            0 <= h.epsilon_end <= h.epsilon_start <= 1,
            "epsilon_end",
            f"need 0 <= epsilon_end <= epsilon_start <= 1, got {h.epsilon_end}, {h.epsilon_start}",
        ),
        (h.exploration_steps >= 0, "exploration_steps", f"must be >= 0, got {h.exploration_steps}"),
    ]
    refuse_first_failure(checks)
