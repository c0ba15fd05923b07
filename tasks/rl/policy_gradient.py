"""REINFORCE with a learned baseline (Williams 1992; Sutton and Barto ch. 13.4).

    task = PolicyGradientTask(num_classes=2, observation_shape=[4])

Each training step takes one rollout of ``T x N`` steps sampled from the current policy and one
gradient step on

    - mean_t log pi(a_t | s_t) * (G_t - V(s_t))  +  value_coef * mean_t (V(s_t) - G_t)^2
      - entropy_coef * mean_t H(pi(. | s_t))

where ``G_t`` is the discounted return-to-go within the rollout, bootstrapped with ``V`` where an
episode was truncated or the rollout ends (a long ``rollout_steps`` makes it the Monte-Carlo
return of whole episodes). ``normalize_advantages`` scales ``G_t - V(s_t)`` to zero mean and unit
variance per rollout. Logged: ``train/loss``, ``train/policy_loss``, ``train/value_loss``,
``train/entropy`` and the episode returns (:mod:`visionflow.tasks.rl.base`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from visionflow.batches import RolloutBatch
from visionflow.registry import TASKS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.rl.actor_critic import PolicyTask
from visionflow.tasks.rl.returns import discounted_returns


@TASKS.register("policy_gradient", batch=RolloutBatch)
class PolicyGradientTask(PolicyTask):
    """REINFORCE with a learned state-value baseline on discrete actions."""

    algorithm = "policy gradient"

    def __init__(
        self,
        normalize_advantages: bool = True,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3),
        scheduler: SchedulerConfig = SchedulerConfig(name="none"),
        **shared: Any,
    ):
        super().__init__(optimizer, scheduler, **shared)
        self.save_hyperparameters()

    def training_step(self, batch: RolloutBatch, batch_idx: int) -> torch.Tensor:
        self.count_experience(batch)
        h = self.hparams
        values, next_values = self.critic_values(batch)
        returns = discounted_returns(
            batch.rewards, next_values, batch.terminated, batch.episode_ends, h.gamma
        )  # [T, N]
        advantages = returns - values
        if h.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        observations = self.learning_view(batch, batch.observations)
        policy = self.model.policy(observations)
        policy_loss = -(policy.log_prob(batch.actions) * advantages).mean()
        value_loss = F.mse_loss(self.model.value(observations), returns)
        entropy = policy.entropy().mean()
        loss = policy_loss + h.value_coef * value_loss - h.entropy_coef * entropy
        for name, value in {
            "loss": loss,
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
        }.items():
            self.log(
                f"train/{name}",
                value.detach(),
                on_step=False,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=len(batch),
                sync_dist=True,
            )
        return loss
