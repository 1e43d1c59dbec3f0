// A FUSE file system whose reads never answer: `hang_fs MOUNTPOINT` serves one
// file, /hang, opened with direct I/O so every read reaches this daemon, and each
// read waits for ever. A process reading it sleeps interruptibly until it gets a
// fatal signal; then, the request being in userspace already, the kernel waits for
// the answer uninterruptibly (fs/fuse/dev.c, request_wait_answer): state D, even
// after SIGKILL. Killing this daemon (or unmounting) aborts the request and lets the
// reader die. Runs in the foreground until killed.
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fuse.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int HangGetattr(const char* path, struct stat* st, struct fuse_file_info* fi) {
  (void)fi;
  memset(st, 0, sizeof(*st));
  if (strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (strcmp(path, "/hang") == 0) {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = 4096;
    return 0;
  }
  return -ENOENT;
}

static int HangOpen(const char* path, struct fuse_file_info* fi) {
  if (strcmp(path, "/hang") != 0) return -ENOENT;
  fi->direct_io = 1;  // no page cache: the read itself waits on us
  return 0;
}

static int HangRead(const char* path, char* buf, size_t size, off_t offset,
                    struct fuse_file_info* fi) {
  (void)path;
  (void)buf;
  (void)size;
  (void)offset;
  (void)fi;
  for (;;) pause();
  return 0;
}

static const struct fuse_operations kOperations = {
    .getattr = HangGetattr,
    .open = HangOpen,
    .read = HangRead,
};

int main(int argc, char** argv) {
  if (argc != 2) {
    static const char kUsage[] = "usage: hang_fs MOUNTPOINT\n";
    ssize_t ignored = write(2, kUsage, sizeof(kUsage) - 1);
    (void)ignored;
    return 64;
  }
  char* args[] = {argv[0], "-f", argv[1], NULL};
  return fuse_main(3, args, &kOperations, NULL);
}
