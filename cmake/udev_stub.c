/* libudev for the portable build's static hwloc (cmake/portable.cmake).
 *
 * hwloc's Linux backend asks libudev only for the serial number and vendor of block
 * devices, which trainrun never uses; it falls back to sysfs when udev_new() returns
 * NULL. Linking libudev.so would make the portable binary depend on it (and on
 * systemd's library in every image), so these stand in: udev is "not available". */
#include <stddef.h>

struct udev;
struct udev_device;

struct udev* udev_new(void) { return NULL; }
struct udev* udev_unref(struct udev* udev) {
  (void)udev;
  return NULL;
}
struct udev_device* udev_device_new_from_subsystem_sysname(struct udev* udev,
                                                           const char* subsystem,
                                                           const char* sysname) {
  (void)udev;
  (void)subsystem;
  (void)sysname;
  return NULL;
}
const char* udev_device_get_property_value(struct udev_device* device, const char* key) {
  (void)device;
  (void)key;
  return NULL;
}
struct udev_device* udev_device_unref(struct udev_device* device) {
  (void)device;
  return NULL;
}
