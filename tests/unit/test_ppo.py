"""PPO: loss on a hand batch, update, checkpoint round trip, config documentation, short training."""

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from daedalus.agents.base import TensorAgent
from daedalus.algos.ppo import (
    AGENT_SPEC,
    PPOConfig,
    make_ppo_agent,
    ppo_loss,
    ppo_update,
    train_ppo,
)
from daedalus.buffers import RolloutBatch
from daedalus.types import TrainContext


class Sink:
    def __init__(self):
        self.logged = []
        self.progress = []

    def log(self, step, metrics):
        self.logged.append((step, metrics))

    def close(self):
        pass

    def update(self, **kwargs):
        self.progress.append(kwargs)


def make_cartpole(seed=None):
    env = gym.make("CartPole-v1")
    if seed is not None:
        env.reset(seed=seed)
    return env


def make_context(make_env, env_id, num_envs=4, seed=0, vectorization="auto"):
    sink = Sink()
    checkpoints = []
    context = TrainContext(
        profile_id="test", agent_id="ppo", env_id=env_id, env_args={}, num_envs=num_envs, seed=seed,
        vectorization=vectorization, device="cpu", config=None, make_env=make_env, logger=sink, progress=sink,
        checkpoint=lambda agent, name, step: checkpoints.append((name, step, agent.save())),
    )
    return context, sink, checkpoints


class ConstantNet(torch.nn.Module):
    """Policy logits and values fixed by hand, so the loss can be worked out on paper."""

    def __init__(self, logits, values):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits))
        self.values = torch.nn.Parameter(torch.tensor(values))

    def forward(self, obs):
        return self.logits, self.values

    def distribution(self, policy_out):
        from daedalus.nn import Categorical

        return Categorical(policy_out)


def test_loss_on_a_hand_batch():
    # Uniform policy over 2 actions: new log-prob = log 0.5 for every row.
    net = ConstantNet([[0.0, 0.0], [0.0, 0.0]], [1.0, 0.0])
    # Old log-probs chosen so that ratios are 2.0 (clipped to 1.2) and 0.5 (clipped to 0.8).
    old = torch.tensor([math.log(0.25), math.log(1.0)])
    batch = RolloutBatch(
        obs=torch.zeros(2, 1), actions=torch.tensor([0, 1]), logprobs=old,
        values=torch.tensor([0.0, 0.0]), advantages=torch.tensor([1.0, -1.0]), returns=torch.tensor([3.0, 2.0]),
    )
    config = PPOConfig(norm_adv=False, vf_coef=0.5, ent_coef=0.1, clip_vloss=False)
    loss, metrics = ppo_loss(batch, net, config, clip_coef=0.2)
    # row 0: A=1, r=2  -> max(-2, -1.2) = -1.2 ; row 1: A=-1, r=0.5 -> max(0.5, 0.8) = 0.8 ; mean -0.2
    assert metrics["loss/policy"].item() == pytest.approx(-0.2)
    # value: ((1-3)^2 + (0-2)^2) / 2 = 4
    assert metrics["loss/value"].item() == pytest.approx(4.0)
    assert metrics["loss/entropy"].item() == pytest.approx(math.log(2))
    assert loss.item() == pytest.approx(-0.2 + 0.5 * 4.0 - 0.1 * math.log(2))
    assert metrics["loss/clip_fraction"].item() == pytest.approx(1.0)
    # Value clipping around old values 0 with clip 0.2: clipped predictions 0.2 and 0.0
    # row 0: max((1-3)^2, (0.2-3)^2) = 7.84 ; row 1: max(4, 4) = 4 -> mean 5.92
    _, metrics = ppo_loss(batch, net, dataclasses.replace(config, clip_vloss=True), clip_coef=0.2)
    assert metrics["loss/value"].item() == pytest.approx(5.92)


def test_update_moves_policy_towards_positive_advantage():
    env = make_cartpole()
    agent = make_ppo_agent(env.observation_space, env.action_space, PPOConfig(learning_rate=1e-2, update_epochs=4, num_minibatches=2, norm_adv=False), seed=0)
    obs = torch.randn(64, 4)
    actions = torch.zeros(64, dtype=torch.long)
    with torch.no_grad():
        policy_out, values = agent.network(obs)
        old = agent.network.distribution(policy_out).log_prob(actions)
    batch = RolloutBatch(obs, actions, old, values, torch.ones(64) + torch.rand(64), values + 1)
    metrics = ppo_update(agent, batch, agent.config, clip_coef=0.2)
    with torch.no_grad():
        new = agent.network.distribution(agent.network(obs)[0]).log_prob(actions)
    assert (new > old).float().mean() > 0.9
    assert {"loss/policy", "loss/value", "loss/approx_kl", "loss/grad_norm"} <= set(metrics)


def test_target_kl_stops_early():
    env = make_cartpole()
    config = PPOConfig(learning_rate=0.5, update_epochs=50, num_minibatches=1, target_kl=1e-3)
    agent = make_ppo_agent(env.observation_space, env.action_space, config, seed=0)
    obs = torch.randn(32, 4)
    actions = torch.randint(0, 2, (32,))
    with torch.no_grad():
        policy_out, values = agent.network(obs)
        old = agent.network.distribution(policy_out).log_prob(actions)
    metrics = ppo_update(agent, RolloutBatch(obs, actions, old, values, torch.randn(32), values), config, 0.2)
    assert metrics["loss/early_stop"] == 1.0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_checkpoint_round_trip_acts_identically(env_id):
    env = gym.make(env_id)
    config = PPOConfig(normalize_obs=True, hidden_sizes=[16])
    agent = make_ppo_agent(env.observation_space, env.action_space, config, seed=1)
    obs = np.random.default_rng(0).normal(size=(256,) + env.observation_space.shape).astype(np.float32)
    agent.preprocess(obs, update_stats=True)  # non-trivial normalization statistics
    # one optimizer step so that Adam moments exist
    loss = sum(p.square().sum() for p in agent.network.parameters())
    loss.backward()
    agent.optimizer.step()
    agent.global_step = 1234
    blob = agent.save()

    clone = make_ppo_agent(env.observation_space, env.action_space, config, seed=99)
    clone.load(blob)
    assert clone.global_step == 1234
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True), clone.predict(obs, deterministic=True))
    # Sampling continues the same random stream.
    np.testing.assert_array_equal(agent.predict(obs, deterministic=False), clone.predict(obs, deterministic=False))
    saved, loaded = agent.optimizer.state_dict()["state"], clone.optimizer.state_dict()["state"]
    assert set(saved) == set(loaded)
    for key in saved:
        torch.testing.assert_close(saved[key]["exp_avg_sq"], loaded[key]["exp_avg_sq"])
    if isinstance(env.action_space, gym.spaces.Box):
        actions = agent.predict(obs * 100, deterministic=False)
        assert actions.max() <= env.action_space.high.max() and actions.min() >= env.action_space.low.min()


def test_config_fields_documented_and_validated():
    for f in dataclasses.fields(PPOConfig):
        assert f.metadata.get("help"), f"PPOConfig.{f.name} has no help text"
    with pytest.raises(ValueError, match="num_minibatches: 'num_minibatches' must be >= 1, got 0"):
        PPOConfig(num_minibatches=0)
    with pytest.raises(ValueError, match="activation: 'activation' must be one of"):
        PPOConfig(activation="sigmoidish")
    assert AGENT_SPEC.agent_id == "ppo" and AGENT_SPEC.config_class is PPOConfig
    assert isinstance(make_ppo_agent(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)), TensorAgent)


def test_short_training_logs_evaluates_and_checkpoints():
    context, sink, checkpoints = make_context(make_cartpole, "CartPole-v1", num_envs=4)
    config = PPOConfig(total_steps=2048, num_steps=64, eval_every_steps=1024, eval_episodes=2,
                       checkpoint_every_steps=1024, log_every_steps=512)
    env = make_cartpole()
    agent = AGENT_SPEC.agent_factory(observation_space=env.observation_space, action_space=env.action_space, config=config, device="cpu")
    artifacts = {}
    train_ppo(make_cartpole, agent, config, artifacts, None, context)
    assert agent.global_step == 2048
    assert [e["step"] for e in artifacts["evaluations"]] == [1024, 2048]
    assert {"env", "inference", "learn", "train_seconds"} <= set(artifacts["time_split"])
    names = [name for name, _, _ in checkpoints]
    assert "step-1024" in names and "step-2048" in names and "best" in names
    logged = {key for _, metrics in sink.logged for key in metrics}
    assert {"charts/steps_per_second", "time/env", "time/inference", "time/learn", "loss/value", "eval/mean_return"} <= logged
    assert sink.progress[-1]["steps"] == 2048 and sink.progress[-1]["episodes"] > 0


def test_training_is_reproducible_and_resumes_exactly():
    config = PPOConfig(total_steps=1024, num_steps=32, eval_every_steps=0, checkpoint_every_steps=0)
    env = make_cartpole()

    def train(agent, total):
        context, _, _ = make_context(make_cartpole, "CartPole-v1", num_envs=4, seed=0)
        train_ppo(make_cartpole, agent, dataclasses.replace(config, total_steps=total), {}, None, context)
        return agent

    a = train(make_ppo_agent(env.observation_space, env.action_space, config, seed=0), 1024)
    b = train(make_ppo_agent(env.observation_space, env.action_space, config, seed=0), 1024)
    torch.testing.assert_close(a.network.state_dict(), b.network.state_dict())
    # A reloaded agent continues from its step counter.
    c = make_ppo_agent(env.observation_space, env.action_space, config, seed=5)
    c.load(a.save())
    train(c, 1536)
    assert c.global_step == 1536 and c.num_updates == a.num_updates + 4


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_numpy_acting_matches_the_torch_distribution(env_id):
    """Collection acts in numpy (no torch dispatch per step): same values, log-probs of the sampled
    actions equal to the torch distribution's, samples distributed like it, checkpointed RNG."""
    env = gym.make(env_id)
    agent = make_ppo_agent(env.observation_space, env.action_space, PPOConfig(hidden_sizes=[16, 16]), seed=3)
    assert agent._numpy_acting
    with torch.no_grad():  # a non-trivial policy: spread the logits / the mean
        agent.network.actor_head.weight.mul_(300.0)
    obs = np.random.default_rng(1).normal(size=(6,) + env.observation_space.shape).astype(np.float32)
    actions, log_probs, values = agent.act(obs)
    policy_out, torch_values = agent._forward(torch.from_numpy(obs))
    dist = agent.network.distribution(policy_out)
    np.testing.assert_allclose(values, torch_values.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_probs, dist.log_prob(torch.as_tensor(actions)).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(agent.values(obs), values, rtol=1e-6)

    many = np.repeat(obs[:1], 20_000, axis=0)
    samples = agent.act(many)[0]
    first = agent.network.distribution(agent._forward(torch.from_numpy(obs[:1]))[0])
    if isinstance(env.action_space, gym.spaces.Discrete):
        expected = first.logits.exp().detach().numpy()[0]
        frequencies = np.bincount(samples, minlength=len(expected)) / len(samples)
        np.testing.assert_allclose(frequencies, expected, atol=0.015)
    else:
        std = agent.network.log_std.exp().detach().numpy()
        np.testing.assert_allclose(samples.mean(0), first.mean.detach().numpy()[0], atol=float(4 * std.max() / np.sqrt(len(samples)) + 1e-3))
        np.testing.assert_allclose(samples.std(0), std, rtol=0.03)

    clone = make_ppo_agent(env.observation_space, env.action_space, PPOConfig(hidden_sizes=[16, 16]), seed=9)
    clone.load(agent.save())
    np.testing.assert_array_equal(agent.act(obs)[0], clone.act(obs)[0])


def test_collection_policy_weights_round_trip_as_plain_arrays():
    from daedalus.algos.on_policy import ActorCriticPolicy

    obs_space, act_space = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)
    config = PPOConfig(normalize_obs=True)
    trained, fresh = make_ppo_agent(obs_space, act_space, config, seed=0), make_ppo_agent(obs_space, act_space, config, seed=1)
    obs = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    trained.preprocess(obs, update_stats=True)  # move the observation statistics away from their start
    source, target = ActorCriticPolicy(trained), ActorCriticPolicy(fresh)
    weights = source.get_weights()
    assert all(isinstance(v, np.ndarray) for v in weights.values()) and any(k.startswith("obs_rms/") for k in weights)
    assert not np.array_equal(target.get_weights()["network/actor_head.weight"], weights["network/actor_head.weight"])
    target.set_weights(weights)
    for key, value in target.get_weights().items():
        np.testing.assert_array_equal(value, weights[key])
    np.testing.assert_array_equal(
        fresh.predict_preprocessed(trained.preprocess(obs)), trained.predict_preprocessed(trained.preprocess(obs))
    )
