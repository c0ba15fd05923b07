"""The policy and value networks of the policy-gradient tasks, and what those tasks share.

:class:`ActorCritic` holds a categorical policy (logits ``[B, A]``) and a state-value critic
(``[B]``), each on its own torso (``net``/``net_args``), with the orthogonal initialization that
PPO implementations use (policy head gain 0.01, value head gain 1). :class:`PolicyTask` acts by
sampling from the policy, which is what the datamodule collects rollouts with.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.distributions import Categorical

from visionflow.batches import ActorOutput, RolloutBatch
from visionflow.tasks.nets.rl import build_torso
from visionflow.tasks.rl.base import RLTask, refuse_first_failure


class ActorCritic(nn.Module):
    """``policy(observations [B, *obs]) -> logits [B, A]``, ``value(observations) -> [B]``."""

    def __init__(
        self, net: str, observation_shape: tuple[int, ...], net_args: dict | None, num_actions: int
    ):
        super().__init__()
        actor, critic = (build_torso(net, observation_shape, net_args) for _ in range(2))
        self.actor = nn.Sequential(actor, nn.Linear(actor.out_features, num_actions))
        self.critic = nn.Sequential(critic, nn.Linear(critic.out_features, 1))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.orthogonal_(module.weight, math.sqrt(2))
                nn.init.zeros_(module.bias)
        nn.init.orthogonal_(self.actor[-1].weight, 0.01)
        nn.init.orthogonal_(self.critic[-1].weight, 1.0)

    def policy(self, observations: torch.Tensor) -> Categorical:
        return Categorical(logits=self.actor(observations), validate_args=False)  # no host reads

    def value(self, observations: torch.Tensor) -> torch.Tensor:
        return self.critic(observations)[..., 0]


class PolicyTask(RLTask):
    """Base of the policy-gradient tasks: an :class:`ActorCritic`, acting by sampling from the
    policy (greedy: its most likely action). Declares the arguments they share (the discount
    ``gamma``, the weights ``value_coef`` and ``entropy_coef`` of the value and entropy terms)
    besides :class:`RLTask`'s; a subclass forwards them all as ``**shared``."""

    def __init__(
        self,
        optimizer: Any,
        scheduler: Any,
        /,
        *,
        gamma: float = 0.99,
        value_coef: float = 0.5,
        entropy_coef: float = 0.01,
        **environment: Any,
    ):
        super().__init__(optimizer, scheduler, **environment)
        refuse_first_failure(
            [
                (0 < gamma <= 1, "gamma", f"must be in (0, 1], got {gamma}"),
                (entropy_coef >= 0, "entropy_coef", f"must be >= 0, got {entropy_coef}"),
                (value_coef > 0, "value_coef", f"must be > 0, got {value_coef}"),
            ]
        )
        self.model = ActorCritic(*self.torso_args, self.num_actions)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``observations [B, *obs] -> action logits [B, A]``."""
        return self.model.actor(observations)

    @torch.no_grad()
    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        """Sampled actions ``[N]`` with their log-probabilities; the most likely action when not
        exploring. No values: the tasks run the critic once per rollout (``critic_values``)."""
        policy = self.model.policy(observations)
        if not explore:
            return ActorOutput(policy.probs.argmax(dim=1))
        actions = policy.sample()
        self.env_steps += len(actions)
        return ActorOutput(actions, policy.log_prob(actions))

    def critic_values(self, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V(s_t), V(s_{t+1}))``, both ``[T, N]``, without gradients: baselines and bootstraps."""
        with torch.no_grad():
            return self.model.value(batch.observations), self.model.value(batch.next_observations)
