"""What the RL tasks share: evaluation by playing episodes, episode-return logging and plots.

A subclass builds its networks, implements ``act`` (the :class:`visionflow.batches.Actor` hook
the datamodule collects experience with) and ``training_step`` on :class:`RolloutBatch` es.
Validation and test batches are :class:`EpisodeBatch` es: the task plays them greedily
(``batch.play(self)``) and logs ``<stage>/return`` (mean undiscounted return), ``<stage>/return_std``
and ``<stage>/length``; the best checkpoint is the one with the highest ``val/return``. During
training it logs ``train/episode_return``: the mean return of the episodes that ended in the epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from visionflow.batches import Episode, EpisodeBatch, RolloutBatch
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.rl import EpisodeReturnEvaluator, plot_episode_returns
from visionflow.plots import save_figure
from visionflow.tasks.base import VisionTask

EPISODE_PLOT = "episode_returns.png"


def check_discrete_actions(
    algorithm: str, action_space: str, environment: str, num_actions: int
) -> None:
    """SpecError unless the environment's actions are discrete (and at least two)."""
    if action_space != "discrete":
        raise SpecError(
            f"action_space: {algorithm} needs a discrete action space, but "
            f"{environment or 'the environment'} has {action_space} actions",
            hint="pick an environment with discrete actions, e.g. CartPole-v1",
        )
    if num_actions < 2:
        raise SpecError(
            f"num_classes: {environment or 'the environment'} has {num_actions} "
            "action(s); a policy needs at least 2"
        )


def refuse_first_failure(checks: list[tuple[bool, str, str]]) -> None:
    """SpecError ``"<key>: <message>"`` for the first ``(ok, key, message)`` that is not ok."""
    for ok, key, message in checks:
        if not ok:
            raise SpecError(f"{key}: {message}")


class RLTask(VisionTask):
    """Base of the RL tasks (see the module docstring): declares what the environment provides
    (``num_classes`` actions, ``observation_shape``, ``action_space``, the ``environment``'s name)
    and the torso (``net``, ``net_args``; :func:`visionflow.tasks.nets.rl.build_torso`). A subclass
    names its ``algorithm`` (for errors) and forwards these as ``**environment``:
    ``super().__init__(optimizer, scheduler, **environment)``, then ``self.save_hyperparameters()``.
    SpecError unless the actions are discrete; :attr:`num_actions` and :attr:`torso_args`
    (``build_torso``'s ``(net, observation_shape, net_args)``) keep what the networks need.
    """

    checkpoint_monitor = ("val/return", "max")
    algorithm: ClassVar[str]

    def __init__(
        self,
        optimizer: Any,
        scheduler: Any,
        /,
        *,
        num_classes: int,
        observation_shape: list[int],
        action_space: Literal["discrete", "continuous"] = "discrete",
        environment: str = "",
        net: str = "rl_mlp",
        net_args: dict[str, Any] | None = None,
    ):
        super().__init__(optimizer, scheduler)
        check_discrete_actions(self.algorithm, action_space, environment, num_classes)
        self.num_actions = num_classes
        self.torso_args = (net, tuple(observation_shape), net_args)
        self.env_steps = 0
        self._episode_returns: list[float] = []
        self._played: dict[str, list[Episode]] = {"val": [], "test": []}
        self.test_episodes: list[Episode] = []

    # ---------------------------------------------------------------------------- experience

    def count_experience(self, batch: RolloutBatch) -> None:
        """Remember the returns of the episodes that ended in ``batch`` (host floats)."""
        self._episode_returns.extend(batch.episode_returns)

    @staticmethod
    def learning_view(batch: RolloutBatch, observations: torch.Tensor) -> torch.Tensor:
        """``observations [..., *obs]`` as the task learns from them: through the batch's
        augmentation (a random shift of pixels, DrQ/RAD) where it has one, else as they are."""
        return observations if batch.augment is None else batch.augment(observations)

    def on_train_epoch_end(self) -> None:
        if self._episode_returns:
            mean = sum(self._episode_returns) / len(self._episode_returns)
            self.log("train/episode_return", mean, prog_bar=True, sync_dist=True)
        self.log("train/env_steps", float(self.env_steps), sync_dist=True)
        self._episode_returns = []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["env_steps"] = self.env_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.env_steps = int(checkpoint.get("env_steps", 0))

    # ---------------------------------------------------------------------------- evaluation

    def validation_step(self, batch: EpisodeBatch, batch_idx: int) -> None:
        self._played["val"].extend(batch.play(self))

    def test_step(self, batch: EpisodeBatch, batch_idx: int) -> None:
        self._played["test"].extend(batch.play(self))

    def on_validation_epoch_end(self) -> None:
        self._log_episodes("val")

    def on_test_epoch_end(self) -> None:
        self.test_episodes = list(self._played["test"])
        self._log_episodes("test")

    def _log_episodes(self, stage: str) -> None:
        episodes, self._played[stage] = self._played[stage], []
        if not episodes:
            return
        evaluator = self.make_evaluator()
        evaluator.process(episodes, [e.seed for e in episodes])
        for name, value in evaluator.evaluate().metrics.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "return", sync_dist=True)

    def make_evaluator(self) -> EpisodeReturnEvaluator:
        """Mean, std, min and max episode return over the seeds (see :mod:`visionflow.evaluation`)."""
        return EpisodeReturnEvaluator()

    def evaluation_step(self, batch: EpisodeBatch) -> tuple[list[Episode], list[int]]:
        """(the batch's episodes played greedily, their seeds)."""
        episodes = batch.play(self)
        return episodes, [e.seed for e in episodes]

    # ----------------------------------------------------------------------------- artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``test``: ``episode_returns.png``, the cumulative reward of every test episode."""
        if stage != "test" or not self.test_episodes:
            return []
        return [
            save_figure(plot_episode_returns(self.test_episodes), Path(directory) / EPISODE_PLOT)
        ]

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        return [
            save_figure(plot_episode_returns(evaluation.details), Path(directory) / EPISODE_PLOT)
        ]
