"""Counters and minibatches of the RL tasks: what a real Lightning fit and a PPO pass do."""

from __future__ import annotations

import lightning.pytorch as lightning
import torch

from visionflow.batches import RolloutBatch
from visionflow.datamodules.experience import ExperienceDataModule
from visionflow.tasks.rl import DQNTask, PPOTask


def test_dqn_counts_only_the_gradient_steps_it_took():
    """2 envs x 1 step per rollout, learning from 6 transitions on: of 5 rollouts only the
    3rd, 4th and 5th take a gradient step. Lightning hands ``on_train_batch_end`` ``{}`` (not
    None) for the skipped ones, which must not count towards the target sync."""
    data = ExperienceDataModule(num_envs=2, rollout_steps=1, rollouts_per_epoch=5, val_seeds=1)
    task = DQNTask(
        num_classes=2,
        observation_shape=[4],
        learning_starts=6,
        batch_size=4,
        buffer_size=64,
        target_sync_interval=3,
        net_args={"hidden_sizes": [8]},
    )
    trainer = lightning.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, datamodule=data)
    assert task.updates == 3
    online, target = task.q_network.state_dict(), task.target_network.state_dict()
    assert all(torch.equal(online[k], target[k]) for k in online)  # synced after the 3rd


def test_ppo_takes_as_many_minibatches_as_asked_and_uses_every_step_once():
    """A rollout of 5 steps x 2 envs in 4 minibatches: 4 optimizer steps per pass (sizes 3, 3,
    2, 2), not 5 of size 10 // 4 = 2, and each of the 10 transitions in exactly one of them."""
    task = PPOTask(num_classes=2, observation_shape=[1], update_epochs=1, minibatches=4)
    seen: list[torch.Tensor] = []
    task._update = lambda minibatch: seen.append(minibatch["observations"]) or torch.zeros(6)
    task._step_schedule = lambda: None
    observations = torch.arange(10.0).view(5, 2, 1)
    zeros = torch.zeros(5, 2)
    output = task.act(observations.flatten(0, 1), explore=True)
    actions, log_probs = output.actions.view(5, 2), output.log_probs.view(5, 2)
    batch = RolloutBatch(observations, actions, zeros, observations, zeros.bool(), zeros.bool())
    batch.log_probs = log_probs
    task.training_step(batch, 0)
    assert len(seen) == 4
    assert sorted(torch.cat(seen).flatten().tolist()) == list(range(10))
