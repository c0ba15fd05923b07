"""Returns, advantages, the replay buffer and the PPO objective against hand computations."""

from __future__ import annotations

import pytest
import torch

from visionflow.batches import RolloutBatch
from visionflow.batches.rl import Transitions
from visionflow.tasks.rl import DQNTask
from visionflow.tasks.rl.buffers import ReplayBuffer
from visionflow.tasks.rl.ppo import clipped_surrogate, value_loss
from visionflow.tasks.rl.returns import discounted_returns, generalized_advantages, n_step_targets

G = 0.5


def column(*values, dtype=torch.float32) -> torch.Tensor:
    """``[T, 1]``: one environment."""
    return torch.tensor(values, dtype=dtype)[:, None]


def test_discounted_returns_stop_at_termination_and_bootstrap_truncation():
    rewards = column(1.0, 2.0, 3.0, 4.0)
    next_values = column(10.0, 20.0, 30.0, 40.0)
    terminated = column(False, True, False, False, dtype=torch.bool)
    ends = column(False, True, False, False, dtype=torch.bool)
    returns = discounted_returns(rewards, next_values, terminated, ends, G)[:, 0]
    # step 3 bootstraps the rollout's end: 4 + .5*40 = 24; step 2: 3 + .5*24 = 15
    # step 1 terminated: 2; step 0: 1 + .5*2 = 2
    assert returns.tolist() == [2.0, 2.0, 15.0, 24.0]
    truncated_only = discounted_returns(rewards, next_values, ~ends & ends, ends, G)[:, 0]
    assert truncated_only[1] == 2.0 + G * 20.0  # truncation bootstraps V(s')


def test_generalized_advantages_by_hand():
    rewards = column(1.0, 1.0, 1.0)
    values = column(0.5, 0.25, 2.0)
    next_values = column(0.25, 2.0, 4.0)
    terminated = column(False, False, True, dtype=torch.bool)
    lam = 0.5
    advantages = generalized_advantages(
        rewards, values, next_values, terminated, terminated, G, lam
    )[:, 0]
    d2 = 1.0 - 2.0  # terminated: no bootstrap
    d1 = 1.0 + G * 2.0 - 0.25
    d0 = 1.0 + G * 0.25 - 0.5
    a2 = d2
    a1 = d1 + G * lam * a2
    a0 = d0 + G * lam * a1
    assert advantages.tolist() == pytest.approx([a0, a1, a2])


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_baseline():
    torch.manual_seed(0)
    rewards, values, resets = torch.randn(3, 7, 2).unbind(0)
    ends = torch.rand(6, 2) < 0.3
    terminated = ends & (torch.rand(6, 2) < 0.5)
    next_values = torch.where(ends, resets[1:], values[1:])  # V(s_t+1) is the next step's value
    rewards, values = rewards[:-1], values[:-1]  # unless the episode ended
    advantages = generalized_advantages(rewards, values, next_values, terminated, ends, 0.9, 1.0)
    returns = discounted_returns(rewards, next_values, terminated, ends, 0.9)
    assert torch.allclose(advantages, returns - values, atol=1e-5)


def test_n_step_targets_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    ends = torch.tensor([[False, False, False], [False, True, False], [False, True, False]])
    terminated = torch.tensor([[False, False, False], [False, True, False], [False, False, False]])
    returns, discount, last = n_step_targets(rewards, terminated, ends, G)
    assert returns.tolist() == [1 + G * 2 + G * G * 4, 1 + G * 2, 1 + G * 2]
    assert discount.tolist() == [G**3, 0.0, G**2]  # terminated: no bootstrap
    assert last.tolist() == [2, 1, 1]


def rollout(start: int, steps: int, envs: int = 2) -> RolloutBatch:
    """Observations numbered ``start*10 + env`` so a sample says where it came from."""
    index = (torch.arange(start, start + steps)[:, None] * 10 + torch.arange(envs)).float()
    zeros = torch.zeros(steps, envs, dtype=torch.bool)
    return RolloutBatch(index[..., None], index.long(), index, index[..., None] + 10, zeros, zeros)


def test_replay_buffer_wraps_around_and_keeps_the_newest_steps():
    buffer = ReplayBuffer(capacity=8, n_steps=1)  # 4 rows of 2 environments
    buffer.add(rollout(0, 3))
    assert (buffer.size, buffer.cursor, len(buffer)) == (3, 3, 6)
    buffer.add(rollout(3, 3))  # steps 3, 4, 5: wraps
    assert (buffer.size, buffer.cursor, len(buffer)) == (4, 2, 8)
    rows = buffer.storage["actions"][:, 0].tolist()
    assert rows == [40, 50, 20, 30]  # steps 0 and 1 overwritten
    sampled = buffer.sample(200).actions
    assert set((sampled // 10).tolist()) == {2, 3, 4, 5}


def test_replay_buffer_state_survives_a_weights_only_checkpoint(tmp_path):
    buffer = ReplayBuffer(capacity=8, n_steps=1)
    buffer.add(rollout(0, 3))
    buffer.add(rollout(3, 3))  # wrapped: the cursor is mid-ring
    torch.save({"replay_buffer": buffer.state_dict()}, tmp_path / "last.ckpt")
    restored = ReplayBuffer(capacity=8, n_steps=1)
    restored.load_state_dict(torch.load(tmp_path / "last.ckpt", weights_only=True)["replay_buffer"])
    assert (restored.size, restored.cursor, len(restored)) == (4, 2, 8)
    buffer.add(rollout(6, 1))
    restored.add(rollout(6, 1))  # goes on overwriting the oldest row, as the original does
    assert buffer.storage.keys() == restored.storage.keys()
    assert all(torch.equal(buffer.storage[k], restored.storage[k]) for k in buffer.storage)


def test_replay_buffer_windows_are_consecutive_and_never_cross_the_newest_row():
    buffer = ReplayBuffer(capacity=10, n_steps=3)  # 5 rows of 2 environments
    buffer.add(rollout(0, 7))  # rows hold steps 5, 6, 2, 3, 4
    sample = buffer.sample(300)
    first = sample.actions // 10
    assert set(first.tolist()) == {2, 3, 4}  # 5 and 6 have no 3-step window
    steps = (sample.rewards // 10).long()
    assert torch.equal(steps, first[:, None] + torch.arange(3))
    assert torch.equal(sample.rewards[:, 0] % 10, sample.actions.float() % 10)  # one env


def test_no_n_step_window_runs_across_a_restart_of_the_environments():
    """After a resume the environments start new episodes: a window from the last step before
    it into the first after it must end at the former (a truncation), not sum both episodes."""
    buffer = ReplayBuffer(capacity=20, n_steps=2)  # 10 rows of 2 environments
    buffer.add(rollout(0, 3))
    restored = ReplayBuffer(capacity=20, n_steps=2)
    restored.load_state_dict(buffer.state_dict())
    restored.end_episodes_at_newest_row()
    restored.add(rollout(3, 2))
    sample = restored.sample(400)
    across = sample.actions // 10 == 2  # windows from step 2 (before) to step 3 (after)
    assert across.any() and sample.episode_ends[across, 0].all()
    assert not sample.terminated[across, 0].any()  # truncated: step 2's next state bootstraps
    assert not sample.episode_ends[~across, 0].any()  # only the last step before it ends one


def test_ppo_clipping_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(4)
    log_probs = torch.log(torch.tensor([1.5, 0.5, 1.5, 0.5])).requires_grad_()
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, ratios = clipped_surrogate(log_probs, old, advantages, clip=0.2)
    # min(r A, clip(r) A): 1.2, 0.5, -1.5, -0.8 -> loss = -mean
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 1.5 - 0.8) / 4)
    loss.backward()
    assert log_probs.grad[0] == 0 and log_probs.grad[3] == 0  # clipped: no gradient
    assert log_probs.grad[1] != 0 and log_probs.grad[2] != 0
    assert ratios.tolist() == pytest.approx([1.5, 0.5, 1.5, 0.5])


def test_value_clipping_takes_the_larger_loss():
    values, old, returns = torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([3.0])
    assert value_loss(values, old, returns, None).item() == 0.5
    assert value_loss(values, old, returns, 0.5).item() == 0.5 * 1.5**2


def test_gae_bootstraps_truncation_and_the_rollout_end_but_not_across_episodes():
    rewards = column(1.0, 1.0, 1.0)
    values = column(2.0, 4.0, 8.0)
    next_values = column(6.0, 10.0, 12.0)  # V(final obs of the truncated episode) = 6
    terminated = column(False, False, False, dtype=torch.bool)
    ends = column(True, False, False, dtype=torch.bool)  # step 0 truncated
    lam = 0.5
    advantages = generalized_advantages(rewards, values, next_values, terminated, ends, G, lam)
    a2 = 1.0 + G * 12.0 - 8.0  # the rollout's last step bootstraps V(s_3)
    a1 = 1.0 + G * 10.0 - 4.0 + G * lam * a2
    a0 = 1.0 + G * 6.0 - 2.0  # truncated: bootstraps V(s'), nothing of the next episode
    assert advantages[:, 0].tolist() == pytest.approx([a0, a1, a2])


class FixedQ(torch.nn.Module):
    """Q-values ``[B, A]``: the same row for every observation."""

    def __init__(self, *q: float):
        super().__init__()
        self.q = torch.tensor(q)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.q.expand(len(observations), -1)


@pytest.mark.parametrize(
    ("double", "terminated", "target"),
    [(True, False, 1 + G * 3), (False, False, 1 + G * 5), (True, True, 1.0)],
)
def test_dqn_target_picks_with_the_online_net_and_values_with_the_target_net(
    double, terminated, target
):
    task = DQNTask(num_classes=2, observation_shape=[1], gamma=G, double_dqn=double)
    task.q_network, task.target_network = FixedQ(1.0, 2.0), FixedQ(5.0, 3.0)
    sample = Transitions(
        observations=torch.zeros(1, 1),
        actions=torch.zeros(1, dtype=torch.int64),  # Q(s, 0) = 1
        rewards=torch.ones(1, 1),
        next_observations=torch.zeros(1, 1, 1),
        terminated=torch.tensor([[terminated]]),
        episode_ends=torch.tensor([[terminated]]),
    )
    error = abs(target - 1.0)
    expected = 0.5 * error**2 if error < 1 else error - 0.5  # Huber
    assert task.td_loss(sample).item() == pytest.approx(expected)
