"""Experience from gymnasium environments, served to the RL tasks as a datamodule.

    data:
      name: experience
      args: {environment: CartPole-v1, num_envs: 8, rollout_steps: 32, rollouts_per_epoch: 25}

- ``train``: an IterableDataset of ``rollouts_per_epoch`` :class:`RolloutBatch` es per epoch. Each
  steps ``num_envs`` environments (gymnasium's synchronous vector API, autoreset in the same
  step) ``rollout_steps`` times with the task being fitted (``trainer.lightning_module``, an
  :class:`visionflow.batches.Actor`). Episodes run on across batches and epochs.
- ``val`` / ``test``: :class:`EpisodeBatch` es of ``episodes_per_batch`` seeds from fixed lists
  (``val_seeds``, ``test_seeds``: a count or the seeds themselves), which the task plays greedily.
  A count ``n`` means the seeds ``1_000_000 .. + n`` (test) or ``2_000_000 .. + n`` (val), the same
  in every run, so evaluations of different runs are comparable.
- ``augmentation``: for pixel observations ``[C, H, W]``, a shift preset of the shared transforms
  (``random_shift``, DrQ/RAD's) that every training batch carries as ``batch.augment``; the task
  applies it to the observations it learns from (the policy acts on clean frames).

The project's own pixel game ``VisionFlow/Catch-v0`` (:mod:`visionflow.datamodules.catch`) is
registered with gymnasium when the first environment is built.

Under DDP (``resources.backend: ray``) each process collects its own rollouts, with environment
seeds offset by its rank (docs/rl.md). Nothing here imports gymnasium until an environment is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from visionflow.batches import Actor, Episode, EpisodeBatch, RLDatasetInfo, RolloutBatch
from visionflow.batches.rl import ActorOutput
from visionflow.datamodules.base import VisionDataModule, mix_seed
from visionflow.datamodules.transforms import TransformContext, TransformSpec, build_transform
from visionflow.datamodules.transforms.shift import RandomShift, shift_of
from visionflow.errors import RunError, SpecError, check_minimums
from visionflow.registry import DATAMODULES

TEST_SEED_START, VAL_SEED_START = 1_000_000, 2_000_000
PROJECT_ENVIRONMENTS = {"VisionFlow/Catch-v0": "visionflow.datamodules.catch:Catch"}


class Environments:
    """How to build the environments of a run: gymnasium id and keyword arguments."""

    def __init__(self, environment: str, env_args: dict[str, Any] | None = None):
        self.environment = environment
        self.env_args = dict(env_args or {})

    def make_vector(self, count: int) -> Any:
        """``count`` environments in a synchronous vector env that resets an ended one in the
        same step (the ended episode's last observation is in ``info["final_obs"]``)."""
        import gymnasium as gym

        for environment_id, entry_point in PROJECT_ENVIRONMENTS.items():
            if environment_id not in gym.registry:
                gym.register(environment_id, entry_point=entry_point)
        try:
            return gym.make_vec(
                self.environment,
                num_envs=count,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                **self.env_args,
            )
        except gym.error.Error as error:
            raise SpecError(
                f"environment: {error}", hint="a gymnasium id such as CartPole-v1 or Acrobot-v1"
            ) from None
        except TypeError as error:
            raise SpecError(f"env_args: {self.environment} does not take them ({error})") from None
        except ValueError as error:
            raise SpecError(f"env_args: {self.environment} refuses them ({error})") from None

    def describe(self) -> RLDatasetInfo:
        """The info a task needs: observation shape, number and kind of actions."""
        import gymnasium as gym

        env = self.make_vector(1)
        observation, actions = env.single_observation_space, env.single_action_space
        env.close()
        shape = tuple(int(s) for s in observation.shape)
        if isinstance(actions, gym.spaces.Discrete):
            count, kind = int(actions.n), "discrete"
        else:
            count, kind = int(np.prod(actions.shape)), "continuous"
        return RLDatasetInfo(
            num_classes=count,
            class_names=tuple(f"action_{i}" for i in range(count)),
            in_channels=shape[0] if len(shape) == 3 else 1,
            image_size=shape[1:] if len(shape) == 3 else None,
            observation_shape=shape,
            action_space=kind,
            environment=self.environment,
        )


def observations_tensor(observations: np.ndarray, actor: Actor) -> torch.Tensor:
    """``[N, *obs]`` float32 on the actor's device."""
    return torch.as_tensor(observations, dtype=torch.float32).to(actor.device)


class EpisodePlayer:
    """Plays one episode per seed, all seeds at once in one vector env, greedily."""

    def __init__(self, environments: Environments):
        self.environments = environments

    def play(self, actor: Actor, seeds: list[int]) -> list[Episode]:
        env = self.environments.make_vector(len(seeds))
        observations, _ = env.reset(seed=list(seeds))
        rewards: list[list[float]] = [[] for _ in seeds]
        alive = np.ones(len(seeds), dtype=bool)
        while alive.any():
            actions = actor.act(observations_tensor(observations, actor), explore=False).actions
            observations, reward, terminated, truncated, _ = env.step(actions.cpu().numpy())
            for index in np.flatnonzero(alive):
                rewards[index].append(float(reward[index]))
            alive &= ~(terminated | truncated)
        env.close()
        return [Episode(seed, float(sum(r)), len(r), tuple(r)) for seed, r in zip(seeds, rewards)]


class EpisodeCollate:
    """Collates seeds into an :class:`EpisodeBatch` with the player."""

    def __init__(self, player: EpisodePlayer):
        self.player = player

    def __call__(self, seeds: list[int]) -> EpisodeBatch:
        return EpisodeBatch([int(s) for s in seeds], self.player)


class SeedList(Dataset):
    """The evaluation seeds, one per item."""

    def __init__(self, seeds: list[int]):
        self.seeds = seeds

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> int:
        return self.seeds[index]


class ObservationShift:
    """A :class:`RandomShift` with its own seeded generator, as the ``augment`` of rollout
    batches: ``observations [..., C, H, W] -> [..., C, H, W]``, a new shift per image."""

    def __init__(self, shift: RandomShift, seed: int):
        self.shift = shift
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, observations: torch.Tensor) -> torch.Tensor:
        return self.shift(observations, self.generator)


class RolloutStream(IterableDataset):
    """``batches`` rollouts per pass, collected with the actor ``actor_source()`` returns; the
    environments and their episodes carry on from one pass to the next. Every batch carries
    ``augment`` (None: no augmentation)."""

    def __init__(
        self,
        environments: Environments,
        num_envs: int,
        steps: int,
        batches: int,
        seed: int,
        actor_source: Callable[[], Actor],
        augment: ObservationShift | None = None,
    ):
        self.environments, self.num_envs, self.steps = environments, num_envs, steps
        self.batches, self.seed, self.actor_source = batches, seed, actor_source
        self.augment = augment
        self.env: Any = None
        self.observations: np.ndarray | None = None
        self.running = np.zeros(num_envs)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        if self.env is None:
            self.env = self.environments.make_vector(self.num_envs)
            self.observations, _ = self.env.reset(
                seed=[self.seed + i for i in range(self.num_envs)]
            )
        actor = self.actor_source()
        for _ in range(self.batches):
            yield self.collect(actor)

    def collect(self, actor: Actor) -> RolloutBatch:
        """One rollout of ``steps`` steps of every environment, written step by step into
        storage allocated once per rollout (no per-step tensors besides the actor's)."""
        rollout = RolloutStorage(self.steps, self.num_envs, self.observations.shape[1:])
        episode_returns: list[float] = []
        for t in range(self.steps):
            episode_returns += self._step(actor, rollout, t)
        return rollout.batch(episode_returns, self.augment)

    def _step(self, actor: Actor, rollout: RolloutStorage, t: int) -> list[float]:
        """Step every environment once with the actor, into row ``t`` of ``rollout``; the returns
        of the episodes that ended."""
        rollout.observations[t] = self.observations
        output = actor.act(torch.from_numpy(rollout.observations[t]).to(actor.device), True)
        actions = output.actions.cpu()
        following, rewards, terminated, truncated, info = self.env.step(actions.numpy())
        ended = terminated | truncated
        rollout.record(t, output, actions, following, rewards, terminated, ended)
        self.running += rewards
        self.observations = following
        if not ended.any():
            return []
        rollout.next_observations[t, ended] = np.stack(info["final_obs"][ended])
        ended_returns = self.running[ended].tolist()
        self.running[ended] = 0.0
        return ended_returns


class RolloutStorage:
    """The arrays of one rollout, ``[T, N, ...]``, filled row by row: environment data in numpy
    (``observations`` and ``next_observations`` float32 ``[T, N, *obs]``, ``rewards`` float32,
    ``terminated``/``episode_ends`` bool), the actor's in torch (``actions`` int64, and
    ``log_probs``/``values`` float32 where the actor gives them)."""

    def __init__(self, steps: int, num_envs: int, observation_shape: tuple[int, ...]):
        shape = (steps, num_envs)
        self.observations = np.empty((*shape, *observation_shape), dtype=np.float32)
        self.next_observations = np.empty_like(self.observations)
        self.rewards = np.empty(shape, dtype=np.float32)
        self.terminated = np.empty(shape, dtype=bool)
        self.episode_ends = np.empty(shape, dtype=bool)
        self.actions = torch.empty(shape, dtype=torch.int64)
        self.actor_outputs: dict[str, torch.Tensor] = {}

    def record(
        self,
        t: int,
        output: ActorOutput,
        actions: torch.Tensor,
        following: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        ended: np.ndarray,
    ) -> None:
        """Row ``t``: the actor's ``output`` (``actions`` on the host), and what the environments
        returned (``following`` observations ``[N, *obs]``; the caller overwrites the ended ones
        with their episode's last observation)."""
        self.actions[t] = actions
        for key in ("log_probs", "values"):
            value = getattr(output, key)
            if value is not None:
                if key not in self.actor_outputs:
                    self.actor_outputs[key] = torch.empty(self.actions.shape)
                self.actor_outputs[key][t] = value
        self.next_observations[t] = following
        self.rewards[t], self.terminated[t], self.episode_ends[t] = rewards, terminated, ended

    def batch(self, episode_returns: list[float], augment: Any) -> RolloutBatch:
        return RolloutBatch(
            observations=torch.from_numpy(self.observations),
            actions=self.actions,
            rewards=torch.from_numpy(self.rewards),
            next_observations=torch.from_numpy(self.next_observations),
            terminated=torch.from_numpy(self.terminated),
            episode_ends=torch.from_numpy(self.episode_ends),
            episode_returns=episode_returns,
            augment=augment,
            **self.actor_outputs,
        )


@DATAMODULES.register("experience", batch=RolloutBatch)
class ExperienceDataModule(VisionDataModule):
    """Rollouts of gymnasium environments for training, seeded episodes for evaluation (see the
    module docstring)."""

    def __init__(
        self,
        environment: str = "CartPole-v1",
        env_args: dict[str, Any] | None = None,
        num_envs: int = 4,
        rollout_steps: int = 128,
        rollouts_per_epoch: int = 10,
        val_seeds: int | list[int] = 10,
        test_seeds: int | list[int] = 100,
        episodes_per_batch: int = 10,
        augmentation: TransformSpec | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        check_minimums(
            {
                "num_envs": (num_envs, 1),
                "rollout_steps": (rollout_steps, 1),
                "rollouts_per_epoch": (rollouts_per_epoch, 1),
                "episodes_per_batch": (episodes_per_batch, 1),
            }
        )
        self.environments = Environments(environment, env_args)
        self.seeds = {
            "val": seed_list(val_seeds, VAL_SEED_START, "val_seeds"),
            "test": seed_list(test_seeds, TEST_SEED_START, "test_seeds"),
        }
        self._info = self.environments.describe()
        self.shift = None if augmentation is None else observation_shift(augmentation, self._info)
        self._stream: RolloutStream | None = None

    @property
    def info(self) -> RLDatasetInfo:
        return self._info

    def actor(self) -> Actor:
        """The task the trainer fits: the policy that collects the training rollouts."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        if not callable(getattr(module, "act", None)):
            raise RunError(
                "the experience datamodule collects rollouts with the task a Lightning "
                f"Trainer fits, and got {type(module).__name__}",
                hint="fit an RL task (dqn, policy_gradient, ppo) on it",
            )
        return module

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        if split == "train":
            if self._stream is None:
                rank = self.trainer.global_rank if self.trainer is not None else 0
                seed = mix_seed(hp.seed, rank)
                self._stream = RolloutStream(
                    self.environments,
                    hp.num_envs,
                    hp.rollout_steps,
                    hp.rollouts_per_epoch,
                    seed,
                    self.actor,
                    None if self.shift is None else ObservationShift(self.shift, seed),
                )
            return DataLoader(self._stream, batch_size=None)
        return DataLoader(
            SeedList(self.seeds[split]),
            batch_size=hp.episodes_per_batch,
            collate_fn=EpisodeCollate(EpisodePlayer(self.environments)),
        )

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Episode batches hold seeds and the player, nothing to move."""
        if isinstance(batch, EpisodeBatch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


def observation_shift(augmentation: TransformSpec, info: RLDatasetInfo) -> RandomShift:
    """The tensor shift of the preset ``augmentation`` for the pixel observations of ``info``."""
    if info.image_size is None:
        raise SpecError(
            f"augmentation: needs pixel observations [C, H, W]; {info.environment} has "
            f"observations of shape {list(info.observation_shape)}",
            hint="drop augmentation, or use a pixel environment such as VisionFlow/Catch-v0",
        )
    size = tuple(info.image_size)
    context = TransformContext(
        mean=(0.0,) * info.in_channels,
        std=(1.0,) * info.in_channels,
        image_size=size,
        source_size=size,
    )
    return shift_of(build_transform(augmentation, context, "augmentation"), size, "augmentation")


def seed_list(seeds: int | list[int], start: int, key: str) -> list[int]:
    """``seeds`` itself, or ``start .. start + seeds - 1`` for a count."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise SpecError(f"{key}: must be >= 1 episodes, got {seeds}")
        return list(range(start, start + seeds))
    if not seeds:
        raise SpecError(f"{key}: the seed list is empty")
    return [int(s) for s in seeds]
