/* The portable build's static hwloc without its plugins (cmake/portable.cmake).
 *
 * libhwloc.a still scans the plugin folder of the machine it was built on
 * (TRAINRUN_HWLOC_PLUGIN_DIR, Debian's /usr/lib/x86_64-linux-gnu/hwloc) on every
 * hwloc_topology_init. Where libhwloc-plugins is installed it dlopens each plugin and
 * its libraries (OpenCL, libpciaccess, libxml2), only to reject them: they need the
 * hwloc symbols of a shared libhwloc, which a static binary does not export. That
 * costs about 1 MiB of memory and, on a loaded machine, a quarter of a second of every
 * run. trainrun needs none of them (the Linux backend reads PCI devices from /sys), so
 * the link wraps opendir (-Wl,--wrap=opendir) and this folder, and only it, reads as
 * missing. Every other opendir goes to glibc's. */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

DIR* __real_opendir(const char* name);

DIR* __wrap_opendir(const char* name) {
  if (name != NULL && strcmp(name, TRAINRUN_HWLOC_PLUGIN_DIR) == 0) {
    errno = ENOENT;
    return NULL;
  }
  return __real_opendir(name);
}
