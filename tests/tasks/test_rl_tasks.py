"""The RL tasks: acting, target-network sync, spec errors, and short learning runs that can fail."""

from __future__ import annotations

import lightning.pytorch as lightning
import pytest
import torch

from visionflow.batches import RolloutBatch
from visionflow.errors import SpecError
from visionflow.pipelines import run
from visionflow.pipelines.build import build_datamodule, build_task
from visionflow.spec import parse_spec
from visionflow.tasks.rl import DQNTask, PolicyGradientTask, PPOTask

CARTPOLE = {"num_classes": 2, "observation_shape": [4]}
RANDOM_POLICY_RETURN = 22  # CartPole-v1 under uniformly random actions, about 22 on average
RANDOM_CATCH_RETURN = -7.5  # VisionFlow/Catch-v0: one ball in eight caught
RANDOM_ACROBOT_RETURN = -500  # Acrobot-v1: a random policy never swings up within 500 steps


def test_dqn_epsilon_decays_with_the_steps_it_acted():
    task = DQNTask(**CARTPOLE, epsilon_start=1.0, epsilon_end=0.1, exploration_steps=100)
    assert task.epsilon == 1.0
    task.act(torch.zeros(50, 4), explore=True)
    assert task.env_steps == 50 and task.epsilon == pytest.approx(0.55)
    task.act(torch.zeros(50, 4), explore=False)  # greedy acting is not counted
    assert task.env_steps == 50
    task.act(torch.zeros(100, 4), explore=True)
    assert task.epsilon == pytest.approx(0.1)


def test_dqn_target_network_syncs_every_interval():
    task = DQNTask(
        **CARTPOLE, target_sync_interval=2, learning_starts=0, batch_size=4, buffer_size=64
    )
    from tests.tasks.test_rl_returns import rollout

    batch = rollout(0, 8)
    batch.observations = batch.observations.expand(-1, -1, 4).contiguous()
    batch.next_observations = batch.next_observations.expand(-1, -1, 4).contiguous()
    batch.actions = batch.actions % 2
    optimizer = torch.optim.SGD(task.parameters(), lr=0.1)

    def step() -> None:
        loss = task.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        task.on_train_batch_end({"loss": loss}, batch, 0)

    task.log = lambda *args, **kwargs: None
    online, target = task.q_network.advantage.weight, task.target_network.advantage.weight
    step()
    assert not torch.equal(online, target)  # one update: not yet synced
    assert not target.requires_grad
    step()
    assert torch.equal(online, target)  # synced after the 2nd update


def test_dueling_head_centres_the_advantages():
    task = DQNTask(**CARTPOLE, dueling=True)
    observations = torch.randn(5, 4)
    network = task.q_network
    features = network.torso(observations)  # [5, 64]
    q = task(observations)  # [5, 2]
    advantages = network.advantage(features)
    assert torch.allclose(q.mean(dim=1), network.value(features)[:, 0], atol=1e-6)
    assert torch.allclose(q[:, 1] - q[:, 0], advantages[:, 1] - advantages[:, 0], atol=1e-6)


def test_policy_tasks_sample_with_log_probs_and_leave_the_critic_to_the_update():
    task = PPOTask(**CARTPOLE)
    output = task.act(torch.randn(6, 4), explore=True)
    assert output.actions.shape == output.log_probs.shape == (6,)
    assert output.values is None  # critic_values runs the critic once per rollout
    assert (output.log_probs <= 0).all() and task.env_steps == 6


@pytest.mark.parametrize("task_type", [DQNTask, PolicyGradientTask, PPOTask])
def test_continuous_actions_are_refused_with_the_environment_named(task_type):
    with pytest.raises(
        SpecError, match="needs a discrete action space, but Pendulum-v1 has continuous actions"
    ):
        task_type(
            num_classes=1,
            observation_shape=[3],
            action_space="continuous",
            environment="Pendulum-v1",
        )


def test_bad_values_name_the_argument():
    with pytest.raises(SpecError, match="gamma: must be in"):
        PPOTask(**CARTPOLE, gamma=1.5)
    with pytest.raises(SpecError, match="epsilon_end"):
        DQNTask(**CARTPOLE, epsilon_start=0.1, epsilon_end=0.5)
    with pytest.raises(SpecError, match="net: unknown"):
        DQNTask(**CARTPOLE, net="rl_mpl")


def cartpole_spec(tmp_path, task: str, args: dict, data: dict, epochs: int) -> dict:
    return {
        "name": f"learn-{task}",
        "seed": 0,
        "task": {"name": task, "args": args},
        "data": {
            "name": "experience",
            "args": {
                "environment": "CartPole-v1",
                "val_seeds": 1,
                "test_seeds": 10,
                "episodes_per_batch": 10,
                **data,
            },
        },
        "trainer": {
            "max_epochs": epochs,
            "accelerator": "cpu",
            "enable_progress_bar": False,
            "num_sanity_val_steps": 0,
        },
        "stages": ["fit", "test"],
        "output_dir": str(tmp_path / "runs"),
    }


def test_a_spec_with_an_unknown_environment_fails_before_running(tmp_path):
    spec = parse_spec(cartpole_spec(tmp_path, "ppo", {}, {"environment": "CartPol-v1"}, 1))
    with pytest.raises(SpecError, match="data.args.environment: .*Did you mean.*CartPole"):
        run(spec)


def test_the_discount_is_not_taken_for_the_schedule(tmp_path):
    spec = parse_spec(cartpole_spec(tmp_path, "ppo", {"gamma": 0.9}, {}, 1))
    assert spec.task.args["gamma"] == 0.9 and "scheduler" not in spec.task.args


@pytest.mark.slow
@pytest.mark.parametrize(
    "task, args, data, epochs",
    [
        (
            "ppo",
            {
                "gamma": 0.98,
                "gae_lambda": 0.8,
                "update_epochs": 10,
                "minibatches": 1,
                "entropy_coef": 0.0,
                "optimizer": {"lr": 0.001},
            },
            {"num_envs": 8, "rollout_steps": 32, "rollouts_per_epoch": 20},
            2,
        ),  # 10k steps
        (
            "policy_gradient",
            {"optimizer": {"lr": 0.005}},
            {"num_envs": 8, "rollout_steps": 64, "rollouts_per_epoch": 20},
            2,
        ),  # 20k steps
        (
            "dqn",
            {
                "learning_starts": 500,
                "exploration_steps": 4000,
                "target_sync_interval": 100,
                "net_args": {"hidden_sizes": [128, 128], "activation": "relu"},
                "optimizer": {"lr": 0.0023},
            },
            {"num_envs": 4, "rollout_steps": 1, "rollouts_per_epoch": 1250},
            2,
        ),  # 10k steps
    ],
)
def test_a_short_fit_beats_a_random_policy_clearly(tmp_path, task, args, data, epochs):
    torch.set_num_threads(1)
    results = run(parse_spec(cartpole_spec(tmp_path, task, args, data, epochs)))
    assert results.metrics["test/return"] > 3 * RANDOM_POLICY_RETURN, results.metrics


def test_the_sharded_evaluate_stage_equals_the_test_stage(tmp_path):
    spec = cartpole_spec(
        tmp_path,
        "ppo",
        {"update_epochs": 1},
        {
            "num_envs": 2,
            "rollout_steps": 16,
            "rollouts_per_epoch": 2,
            "test_seeds": 6,
            "episodes_per_batch": 2,
        },
        1,
    )
    results = run(parse_spec({**spec, "stages": ["fit", "test", {"evaluate": {"shards": 3}}]}))
    tested, evaluated = results.stages["test"], results.stages["evaluate"]
    assert "test/return" in tested and tested == pytest.approx(evaluated), results.stages
    assert (results.run_dir / "plots" / "episode_returns.png").is_file()


class RecordingView:
    """An ``augment`` that records the shapes it was given and leaves them as they are."""

    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, observations: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(observations.shape))
        return observations


def test_dqn_learns_from_the_augmented_views_of_what_it_samples():
    from tests.tasks.test_rl_returns import rollout

    task = DQNTask(**{**CARTPOLE, "observation_shape": [1]}, learning_starts=0, batch_size=5)
    task.log = lambda *args, **kwargs: None
    batch = rollout(0, 4)
    batch.actions = batch.actions % 2
    batch.augment = RecordingView()
    assert task.training_step(batch, 0) is not None
    assert batch.augment.shapes == [(5, 1), (5, 1, 1)]  # observations, n-step next observations


def test_ppo_learns_from_the_augmented_view_of_every_minibatch():
    task = PPOTask(**CARTPOLE, update_epochs=2, minibatches=2)
    task.log = lambda *args, **kwargs: None
    task._update = lambda minibatch: torch.zeros(6)
    task._step_schedule = lambda: None
    observations = torch.randn(4, 2, 4)
    output = task.act(observations.flatten(0, 1), explore=True)
    zeros = torch.zeros(4, 2)
    batch = RolloutBatch(
        observations,
        output.actions.view(4, 2),
        zeros,
        observations,
        zeros.bool(),
        zeros.bool(),
        output.log_probs.view(4, 2),
        augment=RecordingView(),
    )
    task.training_step(batch, 0)
    assert batch.augment.shapes == [(4, 4)] * 4  # 2 passes of 2 minibatches of 4


def test_ppo_logs_the_epoch_means_of_its_update_statistics_once_per_epoch():
    task = PPOTask(**CARTPOLE, update_epochs=1, minibatches=2)
    logged = {}
    task.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    updates = iter(torch.arange(4.0)[:, None] * torch.ones(6))  # update k: every statistic k
    task._update = lambda minibatch: next(updates)
    task._step_schedule = lambda: None
    observations, zeros = torch.randn(2, 2, 4), torch.zeros(2, 2)
    output = task.act(observations.flatten(0, 1), explore=True)
    actions, log_probs = output.actions.view(2, 2), output.log_probs.view(2, 2)
    batch = RolloutBatch(observations, actions, zeros, observations, zeros.bool(), zeros.bool())
    batch.log_probs = log_probs
    for rollout in range(2):  # two rollouts of two updates each
        task.training_step(batch, rollout)
    assert not logged
    task.on_train_epoch_end()
    assert logged["train/loss"] == logged["train/approx_kl"] == 1.5  # mean of 0, 1, 2, 3
    logged.clear()
    task.on_train_epoch_end()
    assert "train/loss" not in logged  # an epoch without updates logs no statistics


def test_dqn_resumes_with_the_replay_buffer_it_had(tmp_path):
    spec = parse_spec(
        cartpole_spec(
            tmp_path,
            "dqn",
            {"learning_starts": 20, "buffer_size": 1000, "net_args": {"hidden_sizes": [8]}},
            {"num_envs": 2, "rollout_steps": 1, "rollouts_per_epoch": 30},
            1,
        )
    )
    first = run(spec.replace(stages=spec.stages[:1]))
    last = first.run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    updates = saved["dqn_updates"]
    assert saved["replay_buffer"]["size"] == 30 and updates > 0  # 30 steps of 2 environments
    seen = {}

    class Inspect(lightning.Callback):
        def on_train_start(self, trainer, task):
            newest = task.buffer.storage["episode_ends"][
                (task.buffer.cursor - 1) % task.buffer.rows
            ]
            seen.update(transitions=len(task.buffer), updates=task.updates, seam=bool(newest.all()))

    data = build_datamodule(spec)
    task = build_task(spec, data.info)
    trainer = lightning.Trainer(
        max_epochs=2,
        callbacks=[Inspect()],
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=data, ckpt_path=last, weights_only=True)
    assert seen == {"transitions": 60, "updates": updates, "seam": True}  # envs restart there
    assert len(task.buffer) == 120 and task.updates == updates + 30


@pytest.mark.slow
def test_ppo_learns_catch_from_shifted_pixels(tmp_path):
    torch.set_num_threads(1)
    spec = cartpole_spec(
        tmp_path,
        "ppo",
        {
            "net": "rl_conv",
            "net_args": {"channels": [16, 32], "features": 128},
            "gamma": 0.95,
            "gae_lambda": 0.9,
            "optimizer": {"lr": 0.0005},
        },
        {
            "environment": "VisionFlow/Catch-v0",
            "augmentation": "random_shift",
            "num_envs": 8,
            "rollout_steps": 64,
            "rollouts_per_epoch": 10,
        },
        2,
    )  # 10k steps
    results = run(parse_spec(spec))
    assert results.metrics["test/return"] > RANDOM_CATCH_RETURN + 4, results.metrics


@pytest.mark.slow
def test_ppo_swings_acrobot_up_within_30k_steps(tmp_path):
    torch.set_num_threads(1)
    spec = cartpole_spec(
        tmp_path,
        "ppo",
        {"gae_lambda": 0.94, "entropy_coef": 0.0, "optimizer": {"lr": 0.001}},
        {
            "environment": "Acrobot-v1",
            "num_envs": 16,
            "rollout_steps": 64,
            "rollouts_per_epoch": 10,
            "val_seeds": 10,  # the best checkpoint: one seed could miss every swing-up
        },
        3,
    )  # 30k steps: examples/acrobot_ppo.yaml's first three epochs
    results = run(parse_spec(spec))
    assert results.metrics["test/return"] > RANDOM_ACROBOT_RETURN + 100, results.metrics
