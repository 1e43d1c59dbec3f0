"""The mpi4py side of the MPI multi-node test: every rank adds its rank with
allreduce and prints the sum, as mpi_allreduce.c does."""
import socket

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank, op=MPI.SUM)
print(f"mpi4py rank {rank} of {size} on {socket.gethostname()}: sum {total} "
      f"(expected {size * (size - 1) // 2})", flush=True)
raise SystemExit(0 if total == size * (size - 1) // 2 else 1)
