"""The peer of rendezvous_bench: N clients of one torch TCPStore (the store that
torchrun's c10d rendezvous is built on) meet at a barrier: each connects, adds 1
to a counter, and waits for the key the last one sets. Prints the seconds each
repetition took, one per line.

usage: tcpstore_barrier.py NODES REPETITIONS
"""
import sys
import threading
import time
from datetime import timedelta

from torch.distributed import TCPStore


def once(nodes, port):
    master = TCPStore("127.0.0.1", port, nodes + 1, True, timedelta(seconds=120), wait_for_workers=False)
    errors = []

    def node():
        try:
            store = TCPStore("127.0.0.1", master.port, nodes + 1, False, timedelta(seconds=120))
            if store.add("joined", 1) == nodes:
                store.set("go", "1")
            store.wait(["go"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=node) for _ in range(nodes)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


def main():
    nodes, repetitions = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(repetitions):
        print(f"{once(nodes, 0):.6f}", flush=True)


if __name__ == "__main__":
    main()
