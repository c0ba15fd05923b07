"""Returns and advantages of time-major rollouts ``[T, N]`` (T steps of N environments).

Two flags per step keep termination and truncation apart, as gymnasium does: ``terminated``
(the next state has no value: do not bootstrap from it) and ``episode_ends`` (terminated or
truncated: nothing after this step belongs to the episode).
"""

from __future__ import annotations

import torch


def discounted_returns(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    episode_ends: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Returns-to-go ``G_t = r_t + gamma * (G_{t+1} if the episode goes on, else
    V(s_{t+1}) unless terminated)``; all ``[T, N]``, ``next_values`` the critic's ``V(s_{t+1})``
    (it bootstraps truncated episodes and the rollout's last step)."""
    returns = torch.empty_like(rewards)
    following = next_values[-1]  # [N]
    for t in range(rewards.shape[0] - 1, -1, -1):
        bootstrap = torch.where(terminated[t], 0.0, next_values[t])
        following = torch.where(episode_ends[t] | (t == rewards.shape[0] - 1), bootstrap, following)
        following = rewards[t] + gamma * following
        returns[t] = following
    return returns


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    episode_ends: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """GAE (Schulman et al. 2016), ``[T, N]``: ``A_t = delta_t + gamma * lam * A_{t+1}`` within an
    episode, with ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)``."""
    not_terminated = (~terminated).float()
    goes_on = (~episode_ends).float()
    deltas = rewards + gamma * next_values * not_terminated - values
    advantages = torch.empty_like(rewards)
    following = torch.zeros_like(rewards[0])  # [N]
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = deltas[t] + gamma * lam * goes_on[t] * following
        advantages[t] = following
    return advantages


def n_step_targets(
    rewards: torch.Tensor, terminated: torch.Tensor, episode_ends: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For windows of ``n`` consecutive steps ``[B, n]`` starting at the sampled transition:
    ``(returns [B], bootstrap_discount [B], last [B])``. The return sums ``gamma^k r_k`` up to the
    window's end or the episode's; the target adds ``bootstrap_discount * max_a Q(s_{last+1}, a)``,
    where the discount is ``gamma^(steps)`` or 0 after a termination; ``last`` is the index in the
    window of the step whose next state bootstraps."""
    window = rewards.shape[1]
    ended_before = torch.cumsum(episode_ends.int(), dim=1) - episode_ends.int()  # ends before k
    inside = ended_before == 0  # [B, n]
    powers = gamma ** torch.arange(window, dtype=rewards.dtype, device=rewards.device)
    returns = (rewards * powers * inside).sum(dim=1)
    last = inside.sum(dim=1) - 1  # [B]
    ended_by_termination = terminated.gather(1, last[:, None])[:, 0]
    discount = torch.where(ended_by_termination, 0.0, gamma ** (last + 1).to(rewards.dtype))
    return returns, discount, last
