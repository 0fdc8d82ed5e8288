"""Coltra's "at a glance" loop, with Daedalus's pieces: collect, then optimize, separately.

Eight copies of MPE's simple_spread, three agents each, one PPO policy shared by all of them
(Coltra's HomogeneousGroup). Needs daedalus[ma].   python examples/multiagent/coltra_style.py
"""

from daedalus.algos.multi_policy import policy_batch
from daedalus.algos.on_policy import ActorCriticPolicy
from daedalus.algos.ppo import PPOConfig, make_ppo_agent, ppo_update
from daedalus.rollout.multiagent import pettingzoo_source

# The environment: 8 copies, every agent in one group ("default"); rows are copies x agents.
source = pettingzoo_source("mpe2:simple_spread_v3", num_envs=8, env_args={"max_cycles": 25, "continuous_actions": False})
group = "default"

# The agent: a typed config (a dataclass), an actor-critic, and its collection policy.
config = PPOConfig(num_steps=100, learning_rate=1e-3, gamma=0.95, ent_coef=0.01)
agent = make_ppo_agent(source.observation_spaces[group], source.action_spaces[group], config, seed=0)
policies = {group: ActorCriticPolicy(agent)}

for iteration in range(10):
    data = source.sample(policies, num_steps=100)          # {group: Trajectory}, (100, 24 rows)
    batch = policy_batch(agent, data[group])               # per-agent GAE over the steps agents acted
    metrics = ppo_update(agent, batch, config, config.clip_coef)
    returns = data[group].episode_returns                  # per agent, episodes that ended
    print(f"{iteration}: loss/policy {metrics['loss/policy']:+.3f}, mean agent return {returns.mean():.1f}")
source.close()
