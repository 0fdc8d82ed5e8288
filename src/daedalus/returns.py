"""Pure return functions: GAE, Monte-Carlo and n-step returns.

Every function takes arrays shaped ``(num_steps, num_envs)`` (``num_envs`` is any flat batch
axis, agents included) and loops over time only, vectorized over envs.

Conventions shared by all functions:

- ``next_values[t]`` is the value estimate of the observation that *followed* step ``t``.
  When the episode ended at step ``t`` this is the value of the **real final observation**
  (not of the reset observation that autoreset produced), so truncated episodes can be
  bootstrapped correctly.
- ``terminated[t]``: the MDP reached a terminal state; nothing follows, the next value is 0.
- ``truncated[t]``: the episode was cut (time limit); the future is still worth
  ``next_values[t]``, so we bootstrap from it.
- In both cases the episode ends, so no credit flows from step ``t + 1`` back into step ``t``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["agent_gae", "compute_gae", "compute_mc_returns", "compute_nstep_returns", "shift_values"]


def shift_values(values: np.ndarray, last_values: np.ndarray) -> np.ndarray:
    """``next_values`` for a rollout without episode ends: ``values[1:]`` then ``last_values``.

    Rows where an episode ended must afterwards be overwritten with the value of the final
    observation (see the module docstring).
    """
    return np.concatenate([values[1:], np.asarray(last_values, dtype=values.dtype)[None]], axis=0)


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized Advantage Estimation (Schulman et al. 2016).

    ``delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t`` and
    ``A_t = delta_t + gamma * gae_lambda * (1 - done_t) * A_{t+1}`` with
    ``done_t = terminated_t or truncated_t``; ``A`` after the last step is 0 (the bootstrap is
    already in ``next_values[-1]``).

    Returns ``(advantages, returns)`` with ``returns = advantages + values`` (the value target).
    """
    rewards = np.asarray(rewards, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    not_terminated = 1.0 - np.asarray(terminated, dtype=np.float32)
    not_done = 1.0 - np.logical_or(terminated, truncated).astype(np.float32)
    # All deltas at once; only the lambda-recursion needs a loop over time.
    deltas = rewards + gamma * not_terminated * np.asarray(next_values, dtype=np.float32) - values
    decay = (gamma * gae_lambda) * not_done
    advantages = np.empty_like(deltas)
    last = np.zeros(deltas.shape[1:], dtype=np.float32)
    for t in range(deltas.shape[0] - 1, -1, -1):
        last = deltas[t] + decay[t] * last
        advantages[t] = last
    return advantages, advantages + values


def compute_mc_returns(
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """Discounted return-to-go within each episode (Monte-Carlo), bootstrapped where cut.

    ``G_t = r_t + gamma * G_{t+1}`` inside an episode; at an episode end ``G_t = r_t`` when
    terminated and ``r_t + gamma * next_values_t`` when truncated; at the end of the rollout
    (episode still running) ``G_t = r_t + gamma * next_values_t``. Pass zeros as
    ``next_values`` for pure, unbootstrapped Monte-Carlo returns.
    """
    rewards = np.asarray(rewards, dtype=np.float32)
    next_values = np.asarray(next_values, dtype=np.float32)
    terminated = np.asarray(terminated, dtype=bool)
    done = np.logical_or(terminated, truncated)
    returns = np.empty_like(rewards)
    following = np.where(terminated[-1], 0.0, next_values[-1]).astype(np.float32)
    for t in range(rewards.shape[0] - 1, -1, -1):
        if t < rewards.shape[0] - 1:
            bootstrap = np.where(terminated[t], 0.0, next_values[t])
            following = np.where(done[t], bootstrap, returns[t + 1])
        returns[t] = rewards[t] + gamma * following
    return returns


def compute_nstep_returns(
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    n_steps: int,
) -> np.ndarray:
    """n-step returns: ``sum_{k<m} gamma^k r_{t+k} + gamma^m * V(s_{t+m})``.

    ``m = min(n_steps, steps until the episode or the rollout ends)``. The bootstrap value is
    ``next_values`` at the last step used, and 0 when that step terminated the episode.
    ``n_steps=1`` gives TD(0) targets; a large ``n_steps`` gives :func:`compute_mc_returns`.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    rewards = np.asarray(rewards, dtype=np.float32)
    next_values = np.asarray(next_values, dtype=np.float32)
    terminated = np.asarray(terminated, dtype=bool)
    done = np.logical_or(terminated, truncated)
    num_steps = rewards.shape[0]
    bootstrap = np.where(terminated, 0.0, next_values).astype(np.float32)
    returns = np.zeros_like(rewards)
    for t in range(num_steps):
        discount = np.ones(rewards.shape[1:], dtype=np.float32)
        running = np.ones(rewards.shape[1:], dtype=bool)  # episode not yet ended before step k
        for k in range(t, min(t + n_steps, num_steps)):
            returns[t] += running * discount * rewards[k]
            discount = discount * gamma
            last_step = running & (done[k] | (k == min(t + n_steps, num_steps) - 1))
            returns[t] += last_step * discount * bootstrap[k]
            running = running & ~done[k]
    return returns


def agent_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    valid: np.ndarray,
    final_values: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE per agent row over the steps at which the agent acted (``valid``): ``(advantages, returns)``.

    Multi-agent rows are not acting at every step: an agent waits for its turn (turn-based
    games), is dead until its copy resets, or has not appeared yet. Each row is therefore read
    as the sequence of its valid steps, and what happens at its invalid steps is folded into the
    valid step before them:

    - rewards that arrive at invalid steps belong to the agent's last action (e.g. the loss a
      tic-tac-toe player receives when the opponent completes a line);
    - an episode end (``terminated`` / ``truncated``) at an invalid step ends the episode of that
      last action; a truncation bootstraps from ``final_values`` at the step it happened;
    - the next value of a valid step is the value at the agent's next valid step of the same
      episode, or ``last_values`` (V of the row's observation after the rollout) when the
      rollout ends first.

    Rewards at invalid steps *before* an agent's first action of an episode belong to no
    action and are dropped. With every step valid this is :func:`compute_gae` with
    ``next_values`` taken from ``values``, ``final_values`` and ``last_values``. Arrays are
    ``(num_steps, rows)``; advantages and returns at invalid steps are 0.
    """
    rewards = np.asarray(rewards, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    terminated = np.asarray(terminated, dtype=bool)
    truncated = np.asarray(truncated, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    final_values = np.asarray(final_values, dtype=np.float32)
    rows = rewards.shape[1]
    advantages = np.zeros_like(rewards)
    # What follows the current step of each row, scanning backwards:
    next_value = np.asarray(last_values, dtype=np.float32).copy()  # value at the next valid step
    next_advantage = np.zeros(rows, dtype=np.float32)
    # Outcome of the invalid steps between a valid step and the next valid one.
    pending_reward = np.zeros(rows, dtype=np.float32)
    pending_end = np.zeros(rows, dtype=bool)  # the episode ended among them
    pending_terminal = np.zeros(rows, dtype=bool)
    pending_final = np.zeros(rows, dtype=np.float32)  # bootstrap value when it was truncated
    for t in range(rewards.shape[0] - 1, -1, -1):
        acted = valid[t]
        ended = terminated[t] | truncated[t]
        # Invalid steps: an episode end restarts what is pending (later rewards belong to the
        # next episode, before this agent acted in it); other rewards add up.
        waiting = ~acted
        restart = waiting & ended
        pending_reward = np.where(restart, rewards[t], np.where(waiting, pending_reward + rewards[t], pending_reward))
        pending_end = np.where(restart, True, pending_end)
        pending_terminal = np.where(restart, terminated[t], pending_terminal)
        pending_final = np.where(restart, final_values[t], pending_final)
        # Valid steps: the step's own end, else what happened before the next valid step.
        own_end = ended
        reward = rewards[t] + np.where(own_end, 0.0, pending_reward)
        episode_end = own_end | pending_end
        terminal = np.where(own_end, terminated[t], pending_terminal)
        bootstrap = np.where(own_end, final_values[t], pending_final)
        following = np.where(episode_end, np.where(terminal, 0.0, bootstrap), next_value)
        delta = reward + gamma * following - values[t]
        advantage = delta + gamma * gae_lambda * np.where(episode_end, 0.0, next_advantage)
        advantages[t] = np.where(acted, advantage, 0.0)
        next_advantage = np.where(acted, advantage, next_advantage).astype(np.float32)
        next_value = np.where(acted, values[t], next_value).astype(np.float32)
        pending_reward = np.where(acted, 0.0, pending_reward).astype(np.float32)
        pending_end = np.where(acted, False, pending_end)
        pending_terminal = np.where(acted, False, pending_terminal)
    returns = np.where(valid, advantages + values, 0.0).astype(np.float32)
    return advantages, returns
