// Writes N MiB of 100-byte numbered lines to stdout as fast as it can, the way a
// chatty training script does. Usage: spew N
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  long bytes = (argc > 1 ? std::atol(argv[1]) : 100) << 20;
  std::string chunk;
  for (long i = 0; i < bytes / 100; ++i) {
    char line[101];
    int n = std::snprintf(line, sizeof(line), "step %010ld loss 0.12345 ", i);
    std::string l(line, n);
    l.append(99 - l.size(), '.');
    l += '\n';
    chunk += l;
    if (chunk.size() >= (1 << 16) || i + 1 == bytes / 100) {
      size_t off = 0;
      while (off < chunk.size()) {
        ssize_t w = write(1, chunk.data() + off, chunk.size() - off);
        if (w <= 0) return 1;
        off += static_cast<size_t>(w);
      }
      chunk.clear();
    }
  }
  return 0;
}
