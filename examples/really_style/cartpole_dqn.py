"""ReAllY's README example, in PyTorch: DQN with a target network on CartPole, written against SampleManager.

    python examples/really_style/cartpole_dqn.py                  # Ray workers, as in ReAllY
    python examples/really_style/cartpole_dqn.py --backend local  # env copies in this process

rl-zoo3's tuned values: 256 transitions per get_data, then 128 gradient steps of batch 64 (Adam 2.3e-3),
the target network copied before each round, epsilon 1 -> 0.04 over 8k steps, 256x256 Q-network.
Stops when a greedy 20-episode test reaches a mean of 475 (CartPole-v1's maximum is 500).
"""

import argparse
import time

import torch
from torch import nn

from daedalus import SampleManager


class QNetwork(nn.Module):
    def __init__(self, num_actions: int = 2, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_actions))

    def forward(self, state: torch.Tensor) -> dict:
        return {"q_values": self.net(state)}


def main(backend: str = "ray", seed: int = 0, max_steps: int = 60_000, workers: int = 2, out: str = "progress_dqn") -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    manager = SampleManager(QNetwork, "CartPole-v1", num_parallel=workers, total_steps=256, model_kwargs={"num_actions": 2},
                            action_sampling_type="epsilon_greedy", epsilon=1.0, seed=seed, backend=backend, cpus_per_worker=0.5)
    manager.initialize_buffer(100_000, optim_keys=["state", "action", "reward", "state_new", "not_done"])
    manager.initialize_aggregator(out, saving_after=20, aggregator_keys=["loss", "test_return"])
    agent, target = manager.get_agent(), manager.get_agent()
    optimizer = torch.optim.Adam(agent.model.parameters(), lr=2.3e-3)
    start, steps, mean_return = time.perf_counter(), 0, 0.0
    with manager:
        while steps < max_steps:
            manager.set_epsilon(max(0.04, 1.0 - 0.96 * steps / 8_000))
            data = manager.get_data()                     # fresh transitions with the current agent
            manager.store_in_buffer(data)
            steps += len(data["reward"])
            target.set_weights(agent.get_weights())
            losses = []
            for _ in range(128):
                batch = manager.sample(64)                # drawn from the FIFO buffer
                with torch.no_grad():
                    q_next = target.max_q(batch["state_new"])
                td_target = torch.as_tensor(batch["reward"]) + 0.99 * torch.as_tensor(batch["not_done"]) * q_next
                loss = nn.functional.smooth_l1_loss(agent.q_val(batch["state"], batch["action"]), td_target)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.model.parameters(), 10.0)
                optimizer.step()
                losses.append(loss.item())
            manager.set_agent(agent.get_weights())         # the workers act with these from the next get_data
            tested = steps >= 10_000 and steps // 256 % 8 == 0  # a greedy test every 2048 steps
            if tested:
                mean_return = sum(manager.test(500, test_episodes=20, evaluation_measure="reward")) / 20
                print(f"steps {steps:6d}  loss {sum(losses) / len(losses):.4f}  test return {mean_return:.1f}")
            manager.update_aggregator(loss=losses, test_return=mean_return if tested else None)  # None: not this time
            if tested and mean_return >= 475:
                break
        manager.save_model(out, epoch=steps)
    result = {"steps": steps, "test_return": mean_return, "seconds": time.perf_counter() - start}
    print(result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["ray", "local"], default="ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="Ray workers / local env copies")
    parser.add_argument("--out", default="progress_dqn", help="folder for plots, CSV and the saved model")
    args = parser.parse_args()
    main(args.backend, args.seed, workers=args.workers, out=args.out)
