"""Return functions against numbers worked out by hand, truncation versus termination included."""

import numpy as np
import pytest

from daedalus.returns import compute_gae, compute_mc_returns, compute_nstep_returns, shift_values

GAMMA = 0.5
LAM = 0.5


def column(*values):
    return np.array(values, dtype=np.float32)[:, None]


def test_gae_no_episode_end_bootstraps_last_value():
    # rewards 1, 1; values 0.5, 0.5; V(after) = 1.0
    # delta_1 = 1 + 0.5*1.0 - 0.5 = 1.0 ; delta_0 = 1 + 0.5*0.5 - 0.5 = 0.75
    # A_1 = 1.0 ; A_0 = 0.75 + 0.25*1.0 = 1.0
    values = column(0.5, 0.5)
    next_values = shift_values(values, np.array([1.0]))
    adv, ret = compute_gae(column(1, 1), values, next_values, column(0, 0), column(0, 0), GAMMA, LAM)
    np.testing.assert_allclose(adv[:, 0], [1.0, 1.0])
    np.testing.assert_allclose(ret[:, 0], [1.5, 1.5])


def test_gae_termination_does_not_bootstrap():
    # step 0 terminates: delta_0 = 1 - 0.5 = 0.5 and no credit from step 1 flows back.
    values = column(0.5, 0.5)
    next_values = column(9.0, 1.0)  # 9.0 would be V(final obs): must be ignored on termination
    adv, _ = compute_gae(column(1, 1), values, next_values, column(1, 0), column(0, 0), GAMMA, LAM)
    np.testing.assert_allclose(adv[:, 0], [0.5, 1.0])


def test_gae_truncation_bootstraps_from_final_observation():
    # step 0 truncated with V(final obs) = 2.0: delta_0 = 1 + 0.5*2 - 0.5 = 1.5, chain cut.
    values = column(0.5, 0.5)
    next_values = column(2.0, 1.0)
    adv, _ = compute_gae(column(1, 1), values, next_values, column(0, 0), column(1, 0), GAMMA, LAM)
    np.testing.assert_allclose(adv[:, 0], [1.5, 1.0])


def test_gae_vectorized_over_envs_matches_columns():
    rng = np.random.default_rng(0)
    rewards, values, next_values = rng.normal(size=(3, 5, 4)).astype(np.float32)
    terminated = rng.random((5, 4)) < 0.2
    truncated = (rng.random((5, 4)) < 0.2) & ~terminated
    adv, _ = compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 0.8)
    for env in range(4):
        single, _ = compute_gae(rewards[:, env:env + 1], values[:, env:env + 1], next_values[:, env:env + 1],
                                terminated[:, env:env + 1], truncated[:, env:env + 1], 0.9, 0.8)
        np.testing.assert_allclose(adv[:, env], single[:, 0], rtol=1e-6)


def test_gae_lambda_one_equals_mc_minus_values():
    rng = np.random.default_rng(1)
    rewards, values, final_values = rng.normal(size=(3, 6, 2)).astype(np.float32)
    # Inside an episode next_values[t] must be values[t + 1] for the sum to telescope.
    next_values = shift_values(values, final_values[-1])
    terminated = np.zeros((6, 2), bool)
    terminated[2, 0] = True
    truncated = np.zeros((6, 2), bool)
    truncated[3, 1] = True
    next_values[3, 1] = final_values[3, 1]
    adv, ret = compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 1.0)
    mc = compute_mc_returns(rewards, next_values, terminated, truncated, 0.9)
    np.testing.assert_allclose(ret, mc, rtol=1e-5, atol=1e-6)


def test_mc_returns_by_hand():
    # rewards 1,2,3 ; step 1 terminates ; V after last = 10
    # G_2 = 3 + 0.5*10 = 8 ; G_1 = 2 (terminal) ; G_0 = 1 + 0.5*2 = 2
    g = compute_mc_returns(column(1, 2, 3), column(0, 0, 10), column(0, 1, 0), column(0, 0, 0), GAMMA)
    np.testing.assert_allclose(g[:, 0], [2.0, 2.0, 8.0])
    # Same but truncated at step 1 with V(final obs) = 4: G_1 = 2 + 0.5*4 = 4 ; G_0 = 1 + 2 = 3
    g = compute_mc_returns(column(1, 2, 3), column(0, 4, 10), column(0, 0, 0), column(0, 1, 0), GAMMA)
    np.testing.assert_allclose(g[:, 0], [3.0, 4.0, 8.0])


def test_nstep_returns_by_hand():
    rewards = column(1, 2, 3, 4)
    next_values = column(10, 20, 30, 40)  # V(s_{t+1})
    none = column(0, 0, 0, 0)
    # n=2: G_0 = 1 + 0.5*2 + 0.25*V(s_2)=0.25*20 -> 7 ; G_1 = 2 + 1.5 + 0.25*30 = 11 ;
    # G_2 = 3 + 2 + 0.25*40 = 15 ; G_3 = 4 + 0.5*40 = 24 (rollout end)
    g = compute_nstep_returns(rewards, next_values, none, none, GAMMA, 2)
    np.testing.assert_allclose(g[:, 0], [7.0, 11.0, 15.0, 24.0])
    # termination at step 1: G_0 = 1 + 0.5*2 = 2 (no bootstrap) ; G_1 = 2
    g = compute_nstep_returns(rewards, next_values, column(0, 1, 0, 0), none, GAMMA, 2)
    np.testing.assert_allclose(g[:, 0], [2.0, 2.0, 15.0, 24.0])
    # truncation at step 1: G_0 = 1 + 0.5*2 + 0.25*20 = 7 ; G_1 = 2 + 0.5*20 = 12
    g = compute_nstep_returns(rewards, next_values, none, column(0, 1, 0, 0), GAMMA, 2)
    np.testing.assert_allclose(g[:, 0], [7.0, 12.0, 15.0, 24.0])
    # n=1 is TD(0)
    g = compute_nstep_returns(rewards, next_values, none, none, GAMMA, 1)
    np.testing.assert_allclose(g[:, 0], [6.0, 12.0, 18.0, 24.0])
    with pytest.raises(ValueError):
        compute_nstep_returns(rewards, next_values, none, none, GAMMA, 0)
