"""Proximal policy optimization (Schulman et al. 2017), clipped objective, as in CleanRL's
``ppo.py``: GAE, per-minibatch advantage normalization, value clipping, entropy bonus,
gradient-norm clipping.

    task = PPOTask(num_classes=2, observation_shape=[4], update_epochs=10, minibatches=4)

Each training step takes one rollout of ``T x N`` steps of ``N`` vectorized environments, computes
GAE(``gae_lambda``) advantages with the current critic, then runs ``update_epochs`` passes over it
in ``minibatches`` shuffled minibatches (sizes differing by at most one, every step in one),
one optimizer step each (manual optimization: Lightning's ``global_step`` counts those steps, so
give the fit's length in epochs). Each minibatch's
observations go through the rollout's augmentation where it has one (pixels: a random shift, as
RAD). The learning-rate schedule advances once per rollout. Logged at the end of each epoch, as
means over its updates: ``train/loss``, ``train/policy_loss``, ``train/value_loss``,
``train/entropy``, ``train/clip_fraction``, ``train/approx_kl``; and the episode returns
(:mod:`visionflow.tasks.rl.base`).
"""

from __future__ import annotations

from typing import Any

import torch

from visionflow.batches import RolloutBatch
from visionflow.registry import TASKS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.rl.actor_critic import PolicyTask
from visionflow.tasks.rl.base import refuse_first_failure
from visionflow.tasks.rl.returns import generalized_advantages

STATISTICS = ("loss", "policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl")


def clipped_surrogate(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, ratios)``: the negated clipped objective ``-mean(min(r A, clip(r, 1-c, 1+c) A))``
    with ``r = exp(log_probs - old_log_probs)``; all inputs ``[B]``."""
    ratios = (log_probs - old_log_probs).exp()
    unclipped = ratios * advantages
    clipped = ratios.clamp(1 - clip, 1 + clip) * advantages
    return -torch.minimum(unclipped, clipped).mean(), ratios


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """``0.5 * mean((V - R)^2)``; with ``clip``, the larger of that and the loss of
    ``old + clamp(V - old, -clip, clip)`` per sample (PPO2's value clipping)."""
    squared = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        squared = torch.maximum(squared, (clipped - returns) ** 2)
    return 0.5 * squared.mean()


class UpdateStatistics:
    """Sums of the update statistics ``[len(STATISTICS)]`` and the number of updates they add up;
    ``means()`` returns their means (none when there were no updates) and starts over."""

    def __init__(self):
        self.totals: torch.Tensor | None = None
        self.updates = 0

    def add(self, totals: torch.Tensor, updates: int) -> None:
        self.totals = totals if self.totals is None else self.totals + totals
        self.updates += updates

    def means(self) -> torch.Tensor:
        means = torch.zeros(0) if self.totals is None else self.totals / self.updates
        self.totals, self.updates = None, 0
        return means


@TASKS.register("ppo", batch=RolloutBatch)
class PPOTask(PolicyTask):
    """PPO with the clipped objective on discrete actions (see the module docstring)."""

    algorithm = "PPO"

    def __init__(
        self,
        gae_lambda: float = 0.95,
        clip_ratio: float = 0.2,
        clip_value: bool = True,
        update_epochs: int = 4,
        minibatches: int = 4,
        max_grad_norm: float | None = 0.5,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=2.5e-4),
        scheduler: SchedulerConfig = SchedulerConfig(name="none"),
        **shared: Any,
    ):
        super().__init__(optimizer, scheduler, **shared)
        self.save_hyperparameters()
        _check_arguments(self.hparams)
        self.automatic_optimization = False
        self._statistics = UpdateStatistics()

    def training_step(self, batch: RolloutBatch, batch_idx: int) -> None:
        self.count_experience(batch)
        h = self.hparams
        values, next_values = self.critic_values(batch)
        advantages = generalized_advantages(
            batch.rewards,
            values,
            next_values,
            batch.terminated,
            batch.episode_ends,
            h.gamma,
            h.gae_lambda,
        )
        flat = {
            "observations": batch.observations.flatten(0, 1),  # [T*N, *obs]
            "actions": batch.actions.flatten(),
            "log_probs": batch.log_probs.flatten(),
            "values": values.flatten(),
            "advantages": advantages.flatten(),
            "returns": (advantages + values).flatten(),
        }
        size = len(batch)
        count = min(h.minibatches, size)  # minibatches of sizes differing by at most one
        totals = torch.zeros(len(STATISTICS), device=values.device)
        for _ in range(h.update_epochs):
            order = torch.randperm(size, device=values.device)
            for indices in order.tensor_split(count):
                picked = {key: value[indices] for key, value in flat.items()}
                picked["observations"] = self.learning_view(batch, picked["observations"])
                totals += self._update(picked)
        self._step_schedule()
        self._statistics.add(totals, h.update_epochs * count)

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean of every statistic over its updates (once per epoch: Lightning's
        ``log`` costs as much as a few environment steps)."""
        for name, mean in zip(STATISTICS, self._statistics.means()):
            self.log(f"train/{name}", mean, prog_bar=name == "loss", sync_dist=True)
        super().on_train_epoch_end()

    def _update(self, minibatch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimizer step on a minibatch; its statistics ``[len(STATISTICS)]`` (detached)."""
        h = self.hparams
        advantages = minibatch["advantages"]
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy = self.model.policy(minibatch["observations"])
        log_probs = policy.log_prob(minibatch["actions"])
        policy_loss, ratios = clipped_surrogate(
            log_probs, minibatch["log_probs"], advantages, h.clip_ratio
        )
        critic_loss = value_loss(
            self.model.value(minibatch["observations"]),
            minibatch["values"],
            minibatch["returns"],
            h.clip_ratio if h.clip_value else None,
        )
        entropy = policy.entropy().mean()
        loss = policy_loss + h.value_coef * critic_loss - h.entropy_coef * entropy
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        if h.max_grad_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=h.max_grad_norm, gradient_clip_algorithm="norm"
            )
        optimizer.step()
        with torch.no_grad():
            log_ratios = log_probs - minibatch["log_probs"]
            clip_fraction = ((ratios - 1).abs() > h.clip_ratio).float().mean()
            approx_kl = ((ratios - 1) - log_ratios).mean()
            return torch.stack(
                [loss, policy_loss, critic_loss, entropy, clip_fraction, approx_kl]
            ).detach()

    def _step_schedule(self) -> None:
        """Advance the learning-rate schedule once per rollout (when there is one)."""
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()


def _check_arguments(h: Any) -> None:
    checks = [
        (0 <= h.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {h.gae_lambda}"),
        (h.clip_ratio > 0, "clip_ratio", f"must be > 0, got {h.clip_ratio}"),
        (h.update_epochs >= 1, "update_epochs", f"must be >= 1, got {h.update_epochs}"),
        (h.minibatches >= 1, "minibatches", f"must be >= 1, got {h.minibatches}"),
        (
            h.max_grad_norm is None or h.max_grad_norm > 0,
            "max_grad_norm",
            f"must be > 0 or null, got {h.max_grad_norm}",
        ),
    ]
    refuse_first_failure(checks)
