"""A small MNIST-like classifier trained with DistributedDataParallel (gloo, CPU).

Run it with trainrun (job.json next to this file): trainrun starts one process per
rank with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, in a copy of this folder,
so ./outputs and ./logs are the run's own and reach run history at the end.
Each rank logs its loss and accuracy per epoch with trainrun's metrics module
(`trainrun history metrics RUN`, `--plot out.svg`); outside trainrun the module is
not there and the script only prints them.

The data is synthetic (28x28 "images" of 10 classes drawn around fixed class
templates) so the example needs no download.
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

try:
    import trainrun  # on PYTHONPATH under trainrun (README, "Metrics")
except ImportError:
    trainrun = None


def synthetic_mnist(samples, seed):
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(10, 28 * 28, generator=torch.Generator().manual_seed(1234))
    labels = torch.randint(0, 10, (samples,), generator=g)
    images = templates[labels] + 1.5 * torch.randn(samples, 28 * 28, generator=g)
    return TensorDataset(images, labels)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()

    dist.init_process_group("gloo")  # reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # every rank starts from the same weights

    dataset = synthetic_mnist(args.samples, seed=42)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = DistributedDataParallel(
        nn.Sequential(nn.Linear(28 * 28, 128), nn.ReLU(), nn.Linear(128, 10)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    os.makedirs("outputs", exist_ok=True)
    os.makedirs("logs", exist_ok=True)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        total, count, correct = 0.0, 0, 0
        start = time.time()
        for images, labels in loader:
            optimizer.zero_grad()
            logits = model(images)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
        # This rank's own loss and accuracy (its shard), one line per rank in the plot.
        if trainrun is not None:
            trainrun.log_metrics({"loss": total / count, "accuracy": correct / count}, step=epoch)
        # The mean loss over every rank's samples.
        stats = torch.tensor([total, count, correct], dtype=torch.float64)
        dist.all_reduce(stats)
        mean_loss, accuracy = (stats[0] / stats[1]).item(), (stats[2] / stats[1]).item()
        print(f"rank {rank}/{world} epoch {epoch}: loss {mean_loss:.4f} accuracy {accuracy:.3f} "
              f"({time.time() - start:.2f} s)")

    # DDP keeps every rank's weights identical; show it with a checksum per rank.
    checksum = sum(p.detach().double().sum().item() for p in model.parameters())
    print(f"rank {rank}: weight checksum {checksum:.6f}")
    if rank == 0:
        torch.save(model.module.state_dict(), "outputs/model.pt")
        with open("outputs/model.txt", "w") as f:
            f.write(f"model: Linear(784,128)-ReLU-Linear(128,10)\n"
                    f"ranks: {world}\nepochs: {args.epochs}\nfinal loss: {mean_loss:.4f}\n"
                    f"final accuracy: {accuracy:.3f}\nweight checksum: {checksum:.6f}\n")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
