"""Episode returns over a fixed list of seeds: the RL evaluator, and its plot.

    evaluator = EpisodeReturnEvaluator()
    evaluator.process(episodes, seeds)          # list[Episode] of one batch, and their seeds
    evaluator.evaluate().metrics                # {"return": mean, "return_std", "return_min", ...}

No reference library scores this (it is a mean and a population std of per-episode returns), so
this is our own code. Episodes are kept per episode, in the order they arrive, so any sharding of
the seed list gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from visionflow.batches import Episode
from visionflow.errors import RunError
from visionflow.evaluation import Evaluation


class EpisodeReturnEvaluator:
    """``return`` (mean undiscounted episode return), ``return_std`` (population std),
    ``return_min``, ``return_max`` and ``length`` (mean steps) over every episode processed;
    ``details`` is the list of episodes."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []

    def reset(self) -> None:
        self.episodes = []

    def process(self, predictions: Sequence[Episode], targets: Sequence[int]) -> None:
        seeds = [episode.seed for episode in predictions]
        if seeds != list(targets):
            raise RunError(f"episode seeds {seeds} do not match the batch's seeds {list(targets)}")
        self.episodes.extend(predictions)

    def evaluate(self) -> Evaluation:
        if not self.episodes:
            raise RunError("no episode was played", hint="give the datamodule some test_seeds")
        returns = [e.total_reward for e in self.episodes]
        mean = math.fsum(returns) / len(returns)
        variance = math.fsum((r - mean) ** 2 for r in returns) / len(returns)
        metrics = {
            "return": mean,
            "return_std": math.sqrt(variance),
            "return_min": min(returns),
            "return_max": max(returns),
            "length": math.fsum(e.length for e in self.episodes) / len(self.episodes),
        }
        return Evaluation(metrics, len(self.episodes), details=list(self.episodes))


def plot_episode_returns(episodes: Sequence[Episode]):
    """A matplotlib Figure: left, the cumulative reward of every episode over its steps; right,
    each episode's return by seed, with the mean."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    curves, totals = figure.subplots(1, 2)
    for episode in episodes:
        running, cumulative = 0.0, []
        for reward in episode.rewards:
            running += reward
            cumulative.append(running)
        curves.plot(range(1, len(cumulative) + 1), cumulative, alpha=0.4, linewidth=1)
    curves.set(
        xlabel="step", ylabel="cumulative reward", title=f"{len(episodes)} evaluation episodes"
    )
    returns = [e.total_reward for e in episodes]
    totals.plot(range(len(returns)), returns, marker="o", linestyle="none", markersize=3)
    mean = sum(returns) / max(1, len(returns))
    totals.axhline(mean, color="red", label=f"mean {mean:.1f}")
    totals.set(xlabel="episode (seed order)", ylabel="return", title="return per episode")
    totals.legend()
    for axes in (curves, totals):
        axes.grid(alpha=0.3)
    return figure
