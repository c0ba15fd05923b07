"""The RL tasks: acting, target-network sync, spec errors, and short learning runs that can fail."""

from __future__ import annotations

import pytest
import torch

from visionflow.errors import SpecError
from visionflow.pipelines import run
from visionflow.spec import parse_spec
from visionflow.tasks.rl import DQNTask, PolicyGradientTask, PPOTask

CARTPOLE = {"num_classes": 2, "observation_shape": [4]}
RANDOM_POLICY_RETURN = 22  # CartPole-v1 under uniformly random actions, about 22 on average


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


def test_policy_tasks_sample_with_log_probs_and_values():
    task = PPOTask(**CARTPOLE)
    output = task.act(torch.randn(6, 4), explore=True)
    assert output.actions.shape == output.log_probs.shape == output.values.shape == (6,)
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
