/* An MPI job for the multi-node tests: every rank adds its rank with
 * MPI_Allreduce and prints the sum, its rank, the world size and its host, so
 * the test can check that every rank of every node took part. */
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long mine = rank, sum = 0;
  MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  printf("allreduce rank %d of %d on %s: sum %ld (expected %ld)\n", rank, size, host, sum,
         (long)size * (size - 1) / 2);
  fflush(stdout);
  MPI_Finalize();
  return sum == (long)size * (size - 1) / 2 ? 0 : 1;
}
