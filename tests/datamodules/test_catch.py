"""The pixel game VisionFlow/Catch-v0 and pixel experience with the shared shift augmentation."""

from __future__ import annotations

import pytest
import torch

from visionflow.batches import ActorOutput
from visionflow.datamodules.experience import (
    EpisodePlayer,
    ExperienceDataModule,
    ObservationShift,
)
from visionflow.datamodules.transforms.shift import RandomShift
from visionflow.errors import SpecError

CATCH = "VisionFlow/Catch-v0"
CELL = 4  # pixels per cell of the default screen


class Follower:
    """Moves the paddle towards the ball, read from the frame: catches every ball."""

    device = torch.device("cpu")

    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        columns = observations[:, 0].amax(dim=1)  # [N, W]: lit columns (ball and paddle)
        bottom = observations[:, 0, -1]  # [N, W]: the paddle's row
        top = (columns - bottom).clamp(min=0)  # the ball's columns (when not on the paddle)
        ball = torch.where(top.any(dim=1), top.argmax(dim=1), bottom.argmax(dim=1))
        paddle = bottom.argmax(dim=1)
        return ActorOutput((torch.sign(ball - paddle) + 1).long())  # 0 left, 1 stay, 2 right


class Stay:
    device = torch.device("cpu")

    def act(self, observations: torch.Tensor, explore: bool) -> ActorOutput:
        return ActorOutput(torch.ones(len(observations), dtype=torch.int64))


def test_catch_is_a_pixel_environment_the_datamodule_describes():
    info = ExperienceDataModule(environment=CATCH).info
    assert info.observation_shape == (1, 32, 32) and info.num_classes == 3
    assert (info.in_channels, tuple(info.image_size)) == (1, (32, 32))


def test_catch_rewards_catches_and_punishes_misses():
    player = EpisodePlayer(ExperienceDataModule(environment=CATCH).environments)
    caught = player.play(Follower(), [1, 2, 3])
    assert [e.total_reward for e in caught] == [10.0, 10.0, 10.0]
    assert all(e.length == 70 for e in caught)
    idle = player.play(Stay(), list(range(20)))
    assert all(-10 <= e.total_reward < 10 for e in idle)
    assert sum(e.total_reward for e in idle) / 20 < -4  # a still paddle catches one ball in 8
    assert player.play(Stay(), [4]) == player.play(Stay(), [4])  # seeded


def test_pixel_rollouts_carry_the_shift_of_the_preset_and_stay_clean():
    data = ExperienceDataModule(
        environment=CATCH, augmentation="random_shift", num_envs=2, rollout_steps=5
    )
    assert data.shift == RandomShift(2, "replicate")  # 32 px: pad round(32 / 21)
    data.actor = lambda: Stay()  # no trainer here: act with a fixed policy
    batch = next(iter(data.train_dataloader()))
    assert batch.observations.shape == (5, 2, 1, 32, 32)
    assert isinstance(batch.augment, ObservationShift)
    shifted = batch.augment(batch.observations)
    assert shifted.shape == batch.observations.shape
    assert not torch.equal(shifted, batch.observations)  # the batch itself keeps clean frames
    assert torch.equal(shifted.sum(dim=(-1, -2)) > 0, batch.observations.sum(dim=(-1, -2)) > 0)


def test_bad_catch_arguments_are_one_line_naming_env_args():
    with pytest.raises(SpecError, match=r"env_args: VisionFlow/Catch-v0 refuses them .*rows=1"):
        ExperienceDataModule(environment=CATCH, env_args={"rows": 1})


def test_augmentation_needs_pixels_and_a_shift():
    with pytest.raises(SpecError, match=r"augmentation: needs pixel observations.*CartPole"):
        ExperienceDataModule(environment="CartPole-v1", augmentation="random_shift")
    with pytest.raises(SpecError, match=r"augmentation: expected a pad and a random crop"):
        ExperienceDataModule(environment=CATCH, augmentation="cifar_train")
