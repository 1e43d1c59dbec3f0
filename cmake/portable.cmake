# TRAINRUN_PORTABLE: the one-file trainrun of README "Install" (scripts/build.sh
# --portable). At load time it needs glibc only: libstdc++ and libgcc, fmt, hwloc and
# OpenSSL's libcrypto are linked in, nlohmann and CLI11 are header-only, and libcurl and
# libxml2 are loaded with dlopen when an object store or https:// data is first used
# (runtime/store/store_libs.h). Release, stripped.
#
# Included by the top-level CMakeLists.txt before the libraries are defined.
if(NOT TRAINRUN_PORTABLE)
  return()
endif()

# libcrypto.a from libssl-dev (FindOpenSSL adds -ldl and -pthread for it).
set(OPENSSL_USE_STATIC_LIBS TRUE)

# fmt: Debian has no libfmt.a, so its one source file is compiled here with the flags
# of every other file (ccache then serves them from the regular build), and fmt::fmt
# stands for it.
find_path(TRAINRUN_FMT_INCLUDE fmt/format-inl.h REQUIRED)
add_library(trainrun_fmt STATIC ${CMAKE_CURRENT_LIST_DIR}/fmt_format.cc)
target_compile_definitions(trainrun_fmt PUBLIC FMT_SHARED)
add_library(fmt::fmt INTERFACE IMPORTED GLOBAL)
set_target_properties(fmt::fmt PROPERTIES INTERFACE_LINK_LIBRARIES trainrun_fmt)

# hwloc: libhwloc.a from libhwloc-dev, without libudev (cmake/udev_stub.c says why) and
# without its plugins (cmake/hwloc_no_plugins.c says why).
find_library(TRAINRUN_HWLOC_STATIC NAMES libhwloc.a REQUIRED)
get_filename_component(hwloc_libdir ${TRAINRUN_HWLOC_STATIC} DIRECTORY)
add_library(trainrun_hwloc_stubs STATIC ${CMAKE_CURRENT_LIST_DIR}/udev_stub.c
                                      ${CMAKE_CURRENT_LIST_DIR}/hwloc_no_plugins.c)
target_compile_definitions(trainrun_hwloc_stubs PRIVATE
                           TRAINRUN_HWLOC_PLUGIN_DIR="${hwloc_libdir}/hwloc")
add_library(trainrun_hwloc_static INTERFACE)
target_link_libraries(trainrun_hwloc_static INTERFACE ${TRAINRUN_HWLOC_STATIC} trainrun_hwloc_stubs
                      m ${CMAKE_DL_LIBS} Threads::Threads)
target_link_options(trainrun_hwloc_static INTERFACE -Wl,--wrap=opendir)

# libstdc++ and libgcc linked in; symbols stripped.
add_link_options(-static-libstdc++ -static-libgcc -Wl,--as-needed -s)
