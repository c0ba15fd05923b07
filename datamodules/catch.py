"""``VisionFlow/Catch-v0``: a small pixel game for learning from frames on a CPU.

The screen is a grid of ``rows x columns`` cells of ``cell`` pixels, one channel. A ball falls
from a random column of the top row, one row per step; the agent moves a one-cell paddle along
the bottom row (actions: 0 left, 1 stay, 2 right). When the ball reaches the bottom row the agent
gets +1 if the paddle is under it, else -1, and the next ball starts at the top. An episode is
``balls`` balls, so its return lies in ``[-balls, balls]``; a uniformly random policy catches
about one ball in eight: -7.5 on average with the defaults (8 x 8 cells of 4 pixels, 10 balls,
70 steps per episode).

The observation is the frame itself, ``float32 [1, rows * cell, columns * cell]`` in ``{0, 1}``:
one frame shows everything (the ball only falls), so no frame stack is needed. This is the game
of DeepMind's bsuite ``catch``, drawn in pixels so that a conv encoder and image augmentation
have something to do. CartPole's own frames need pygame, which the project does not install
(docs/rl.md).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

MOVES = (-1, 0, 1)  # left, stay, right


class Catch(gym.Env):
    """Catch falling balls with a paddle, from pixels (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        rows: int = 8,
        columns: int = 8,
        cell: int = 4,
        balls: int = 10,
        render_mode: str | None = None,
    ):
        if rows < 2 or columns < 2 or cell < 1 or balls < 1:
            raise ValueError(
                f"Catch: need rows, columns >= 2, cell, balls >= 1; got rows={rows}, "
                f"columns={columns}, cell={cell}, balls={balls}"
            )
        self.rows, self.columns, self.cell, self.balls = rows, columns, cell, balls
        self.render_mode = render_mode
        shape = (1, rows * cell, columns * cell)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.ball = np.zeros(2, dtype=np.int64)  # (row, column)
        self.paddle = columns // 2
        self.balls_left = balls

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.paddle, self.balls_left = self.columns // 2, self.balls
        self._drop_ball()
        return self.frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.paddle = int(np.clip(self.paddle + MOVES[int(action)], 0, self.columns - 1))
        self.ball[0] += 1
        reward = 0.0
        if self.ball[0] == self.rows - 1:
            reward = 1.0 if self.ball[1] == self.paddle else -1.0
            self.balls_left -= 1
            if self.balls_left > 0:
                self._drop_ball()
        return self.frame(), reward, self.balls_left == 0, False, {}

    def frame(self) -> np.ndarray:
        """The screen, ``float32 [1, H, W]``: the ball and the paddle are ones."""
        screen = np.zeros(self.observation_space.shape, dtype=np.float32)
        self._fill(screen, *self.ball)
        self._fill(screen, self.rows - 1, self.paddle)
        return screen

    def render(self) -> np.ndarray:
        """The screen as an RGB image, ``uint8 [H, W, 3]``."""
        return np.repeat(self.frame()[0, :, :, None] * 255, 3, axis=2).astype(np.uint8)

    def _drop_ball(self) -> None:
        self.ball[:] = (0, self.np_random.integers(self.columns))

    def _fill(self, screen: np.ndarray, row: int, column: int) -> None:
        size = self.cell
        screen[0, row * size : (row + 1) * size, column * size : (column + 1) * size] = 1.0
