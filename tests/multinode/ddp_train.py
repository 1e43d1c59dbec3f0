"""A small PyTorch DDP job on the gloo backend for the multi-node tests.

Every rank fits the same linear model to its own shard of a synthetic regression
problem; DDP averages the gradients, so every rank ends with the same weights.
It prints where it runs, the loss of every step and a weight checksum.

  --fail-rank R --exit-code C   rank R exits with C right after its first step, while
                                the others go on into the next step's all-reduce
  --steps N                     steps to train (default 30)
"""
import argparse
import datetime
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--fail-rank", type=int, default=-1)
    parser.add_argument("--exit-code", type=int, default=1)
    args = parser.parse_args()

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=300))
    rank, world = dist.get_rank(), dist.get_world_size()
    print(f"joined rank {rank} of {world} on {socket.gethostname()} "
          f"node {os.environ.get('NODE_RANK')} local {os.environ.get('LOCAL_RANK')} "
          f"master {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
          f"ifname {os.environ.get('GLOO_SOCKET_IFNAME')}", flush=True)

    torch.manual_seed(0)  # every rank starts from the same weights
    model = DistributedDataParallel(nn.Linear(16, 1))
    truth = torch.arange(16, dtype=torch.float32) / 16
    g = torch.Generator().manual_seed(1000 + rank)  # each rank its own shard
    x = torch.randn(256, 16, generator=g)
    y = x @ truth + 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(args.steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x).squeeze(1), y)
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}", flush=True)
        if rank == args.fail_rank:
            print(f"rank {rank}: giving up after step {step}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            # At once, as a crash would: sys.exit's interpreter teardown closes gloo's
            # sockets first and lingers, so a peer that saw them close could end (and be
            # reaped as the first failure) before this rank does.
            os._exit(args.exit_code)
    checksum = sum(p.detach().double().sum().item() for p in model.parameters())
    print(f"weight checksum {checksum:.8f}", flush=True)
    os.makedirs("outputs", exist_ok=True)
    with open(f"outputs/rank{rank}.txt", "w") as f:
        f.write(f"{checksum:.8f}\n")
    if rank == 0:
        torch.save(model.module.state_dict(), "outputs/model.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
