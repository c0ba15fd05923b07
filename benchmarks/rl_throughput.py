"""PPO throughput on CartPole-v1: the VisionFlow pipeline vs a plain single-file PyTorch PPO loop.

Both sides run the same PPO configuration: the same actor-critic network (two 64-64 tanh MLPs),
the same gymnasium synchronous vector environments (autoreset in the same step), the same
rollout size (``num_envs x rollout_steps``), update epochs, minibatches and Adam settings. The
plain loop is CleanRL-style code in this file: collect into preallocated tensors, GAE, clipped
updates. The pipeline goes spec -> ExperienceDataModule -> PPOTask -> VisionFlow's Lightning
Trainer (loggers, checkpointing and all). Both are timed from rollout ``warmup`` to the end of
the fit; prints environment steps/s for both and ``ratio = pipeline / plain``, by wall time and by
this process's CPU time (the figure to compare on a machine that others load).

    python benchmarks/rl_throughput.py
    python benchmarks/rl_throughput.py --rollouts 40 --warmup 5 --num-envs 8 --rollout-steps 32
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from lightning.pytorch import Callback

from visionflow.pipelines import seed_everything
from visionflow.tasks.rl.actor_critic import ActorCritic


def clocks() -> torch.Tensor:
    """``[2]``: wall time and this process's CPU time, in seconds."""
    return torch.tensor([time.perf_counter(), time.process_time()], dtype=torch.float64)


class RolloutTimer(Callback):
    """Wall and CPU time from the start of training batch ``warmup`` to the end of the fit."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, clocks(), clocks()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.warmup and trainer.current_epoch == 0:
            self.start = clocks()

    def on_train_end(self, trainer, module):
        self.end = clocks()


def pipeline_throughput(args: argparse.Namespace) -> torch.Tensor:
    """Environment steps per second of wall and of CPU time ``[2]``."""
    from visionflow.pipelines import build_datamodule, build_task, build_trainer
    from visionflow.rundir import RunDirectory
    from visionflow.spec import parse_spec

    with tempfile.TemporaryDirectory() as folder:
        spec = parse_spec(
            {
                "name": "rl_throughput",
                "seed": 0,
                "task": {
                    "name": "ppo",
                    "args": {
                        "update_epochs": args.update_epochs,
                        "minibatches": args.minibatches,
                        "optimizer": {"name": "adam", "lr": 2.5e-4},
                    },
                },
                "data": {
                    "name": "experience",
                    "args": {
                        "environment": "CartPole-v1",
                        "num_envs": args.num_envs,
                        "rollout_steps": args.rollout_steps,
                        "rollouts_per_epoch": args.rollouts,
                    },
                },
                "trainer": {
                    "max_epochs": 1,
                    "accelerator": "cpu",
                    "devices": 1,
                    "enable_progress_bar": False,
                    "limit_val_batches": 0,
                    "num_sanity_val_steps": 0,
                    "log_every_n_steps": 50,
                },
                "output_dir": folder,
            }
        )
        seed_everything(0)
        datamodule = build_datamodule(spec)
        task = build_task(spec, datamodule.info)
        timer = RolloutTimer(args.warmup)
        run_dir = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
        trainer = build_trainer(spec, run_dir, fit=True, monitor=(None, "min"), callbacks=[timer])
        trainer.fit(task, datamodule=datamodule)
    steps = (args.rollouts - args.warmup) * args.num_envs * args.rollout_steps
    return steps / (timer.end - timer.start)


def plain_throughput(args: argparse.Namespace) -> torch.Tensor:
    """CleanRL-style PPO: the same network, environments, rollout and update sizes. Environment
    steps per second of wall and of CPU time ``[2]``."""
    import gymnasium as gym

    seed_everything(0)
    envs = gym.make_vec(
        "CartPole-v1",
        num_envs=args.num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    model = ActorCritic("rl_mlp", (4,), None, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2.5e-4)
    shape = (args.rollout_steps, args.num_envs)
    obs, next_obs = torch.zeros(*shape, 4), torch.zeros(*shape, 4)
    actions, log_probs = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape)
    rewards, terminated, ends = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    observation, _ = envs.reset(seed=list(range(args.num_envs)))
    start = clocks()
    for rollout in range(args.rollouts):
        if rollout == args.warmup:
            start = clocks()
        for t in range(args.rollout_steps):
            obs[t] = torch.as_tensor(observation)
            with torch.no_grad():
                policy = model.policy(obs[t])
                action = policy.sample()
            actions[t], log_probs[t] = action, policy.log_prob(action)
            observation, reward, term, trunc, info = envs.step(action.numpy())
            following = observation.copy()
            done = term | trunc
            if done.any():
                following[done] = torch.tensor(list(info["final_obs"][done])).numpy()
            next_obs[t], rewards[t] = torch.as_tensor(following), torch.as_tensor(reward)
            terminated[t], ends[t] = torch.as_tensor(term), torch.as_tensor(done)
        with torch.no_grad():
            values, next_values = model.value(obs), model.value(next_obs)
            deltas = rewards + 0.99 * next_values * (1 - terminated) - values
            advantages, running = torch.zeros(shape), torch.zeros(args.num_envs)
            for t in reversed(range(args.rollout_steps)):
                running = deltas[t] + 0.99 * 0.95 * (1 - ends[t]) * running
                advantages[t] = running
            returns = advantages + values
        flat = [x.flatten(0, 1) for x in (obs, actions, log_probs, advantages, returns, values)]
        size = args.num_envs * args.rollout_steps
        minibatch = size // args.minibatches
        for _ in range(args.update_epochs):
            order = torch.randperm(size)
            for begin in range(0, size, minibatch):
                b_obs, b_act, b_logp, b_adv, b_ret, b_val = (
                    x[order[begin : begin + minibatch]] for x in flat
                )
                b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)
                policy = model.policy(b_obs)
                ratio = (policy.log_prob(b_act) - b_logp).exp()
                pg_loss = -torch.min(ratio * b_adv, ratio.clamp(0.8, 1.2) * b_adv).mean()
                value = model.value(b_obs)
                clipped = b_val + (value - b_val).clamp(-0.2, 0.2)
                v_loss = 0.5 * torch.max((value - b_ret) ** 2, (clipped - b_ret) ** 2).mean()
                loss = pg_loss + 0.5 * v_loss - 0.01 * policy.entropy().mean()
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                optimizer.step()
    steps = (args.rollouts - args.warmup) * args.num_envs * args.rollout_steps
    return steps / (clocks() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rollout-steps", type=int, default=128)
    parser.add_argument("--rollouts", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not 0 <= args.warmup < args.rollouts:
        parser.error("--warmup must be below --rollouts")
    torch.set_num_threads(args.threads)
    plain = plain_throughput(args)
    pipeline = pipeline_throughput(args)
    for clock, index in (("wall", 0), ("CPU", 1)):
        print(f"plain PyTorch PPO: {plain[index]:,.0f} env-steps/s of {clock} time")
        print(f"visionflow pipeline: {pipeline[index]:,.0f} env-steps/s of {clock} time")
        print(f"ratio = {pipeline[index] / plain[index]:.3f} ({clock} time)")


if __name__ == "__main__":
    main()
