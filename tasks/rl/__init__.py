"""Reinforcement learning as Lightning tasks: DQN, REINFORCE with a baseline, PPO.

The environments live on the data side (``visionflow.datamodules.experience``); the tasks act
through the :class:`visionflow.batches.Actor` hook and learn from the rollouts the datamodule
yields (docs/rl.md).
"""

from visionflow.tasks.rl import buffers, returns
from visionflow.tasks.rl.dqn import DQNTask
from visionflow.tasks.rl.policy_gradient import PolicyGradientTask
from visionflow.tasks.rl.ppo import PPOTask

__all__ = ["DQNTask", "PPOTask", "PolicyGradientTask", "buffers", "returns"]
