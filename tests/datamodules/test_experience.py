"""The experience datamodule: rollouts collected with an actor, seeded evaluation episodes,
clear errors for bad environments."""

from __future__ import annotations

import pytest
import torch

from visionflow.batches import ActorOutput, EpisodeBatch, RolloutBatch
from visionflow.datamodules.experience import (
    TEST_SEED_START,
    Environments,
    EpisodePlayer,
    ExperienceDataModule,
    RolloutStream,
)
from visionflow.errors import SpecError


class AlwaysLeft:
    """An actor that always pushes CartPole's cart left: episodes end in about 10 steps."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = 0

    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        self.calls += 1
        return ActorOutput(torch.zeros(len(observations), dtype=torch.int64))


def test_rollouts_are_time_major_and_keep_the_final_observation_of_ended_episodes():
    actor = AlwaysLeft()
    stream = RolloutStream(
        Environments("CartPole-v1"),
        num_envs=3,
        steps=40,
        batches=2,
        seed=0,
        actor_source=lambda: actor,
    )
    batches = list(stream)
    assert len(batches) == len(stream) == 2 and actor.calls == 80
    batch = batches[0]
    assert isinstance(batch, RolloutBatch) and len(batch) == 120
    assert batch.observations.shape == batch.next_observations.shape == (40, 3, 4)
    assert batch.rewards.shape == batch.terminated.shape == (40, 3)
    ended = batch.episode_ends
    assert ended.any() and torch.equal(ended, batch.terminated)  # pushed over, not truncated
    # within an episode the next observation is the next step's; where it ended it is the
    # episode's last (a fallen pole), not the reset that follows (near upright)
    goes_on = ~ended[:-1]
    assert torch.equal(batch.next_observations[:-1][goes_on], batch.observations[1:][goes_on])
    assert (batch.next_observations[ended][:, 2].abs() > 0.2).all()
    assert (batch.observations[1:][ended[:-1]][:, 2].abs() < 0.06).all()
    assert len(batch.episode_returns) == int(ended.sum())
    assert sum(batch.episode_returns) <= float(batch.rewards.sum())


class CountingPolicy(AlwaysLeft):
    """An actor that reports, at its ``k``-th call, log-probabilities ``-k`` and values ``k``."""

    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        output = super().act(observations, explore)
        count = torch.full((len(observations),), float(self.calls))
        return ActorOutput(output.actions, -count, count)


def test_rollouts_keep_the_actors_log_probs_and_values_step_by_step():
    stream = RolloutStream(Environments("CartPole-v1"), 2, 5, 1, 0, CountingPolicy)
    batch = next(iter(stream))
    steps = torch.arange(1.0, 6.0)[:, None].expand(5, 2)
    assert torch.equal(batch.values, steps) and torch.equal(batch.log_probs, -steps)
    assert batch.actions.dtype == torch.int64 and batch.observations.dtype == torch.float32
    assert batch.terminated.dtype == batch.episode_ends.dtype == torch.bool
    plain = next(iter(RolloutStream(Environments("CartPole-v1"), 2, 5, 1, 0, AlwaysLeft)))
    assert plain.log_probs is None and plain.values is None


def test_evaluation_episodes_are_seeded_and_repeatable():
    data = ExperienceDataModule(test_seeds=3, episodes_per_batch=2)
    batches = list(data.test_dataloader())
    assert [b.seeds for b in batches] == [
        [TEST_SEED_START, TEST_SEED_START + 1],
        [TEST_SEED_START + 2],
    ]
    assert isinstance(batches[0], EpisodeBatch)
    first, again = batches[0].play(AlwaysLeft()), batches[0].play(AlwaysLeft())
    assert first == again and [e.seed for e in first] == batches[0].seeds
    assert all(e.length == len(e.rewards) == e.total_reward < 20 for e in first)


def test_info_describes_the_environment():
    info = ExperienceDataModule(environment="Acrobot-v1").info
    assert (info.num_classes, info.observation_shape, info.action_space) == (3, (6,), "discrete")
    assert ExperienceDataModule(environment="Pendulum-v1").info.action_space == "continuous"


def test_lunar_lander_plays_where_box2d_is_installed():
    for module in ("Box2D", "pygame"):  # gymnasium's box2d package imports both
        pytest.importorskip(
            module, reason=f"LunarLander-v3 needs {module}: pip install box2d pygame-ce"
        )
    data = ExperienceDataModule(environment="LunarLander-v3", test_seeds=2)
    info = data.info
    assert (info.num_classes, info.observation_shape, info.action_space) == (4, (8,), "discrete")
    episodes = next(iter(data.test_dataloader())).play(AlwaysLeft())
    assert [e.seed for e in episodes] == [TEST_SEED_START, TEST_SEED_START + 1]
    assert all(0 < e.length < 1000 for e in episodes)  # the lander crashes or comes to rest


def test_an_unknown_environment_is_one_line_with_a_suggestion():
    with pytest.raises(SpecError, match=r"environment: .*CartPol.*Did you mean.*CartPole"):
        ExperienceDataModule(environment="CartPol-v1")


def test_bad_counts_name_the_argument():
    with pytest.raises(SpecError, match="num_envs: must be >= 1"):
        ExperienceDataModule(num_envs=0)
    with pytest.raises(SpecError, match="test_seeds: must be >= 1"):
        ExperienceDataModule(test_seeds=0)


def test_the_player_plays_each_seed_once_even_when_episodes_differ_in_length():
    episodes = EpisodePlayer(Environments("CartPole-v1")).play(AlwaysLeft(), [5, 6, 7, 8])
    assert [e.seed for e in episodes] == [5, 6, 7, 8]
    assert all(e.total_reward == e.length for e in episodes)
