# TRAINRUN_PORTABLE: the one-file trainrun of README "Install" (scripts/build.sh
# --portable). At load time it needs glibc only: libstdc++ and libgcc, fmt, hwloc and
# OpenSSL's libcrypto are linked in, nlohmann and CLI11 are header-only, and libcurl and
# libxml2 are loaded with dlopen when an object store or https:// data is first used
# (runtime/store/store_libs.h). Release, stripped.
#
# TRAINRUN_PORTABLE_SYSROOT (scripts/build.sh --portable sets it): a glibc 2.31 sysroot
# (scripts/portable-sysroot.sh) to compile and link against, so the binary loads on
# glibc 2.31 and newer (Debian 11, Ubuntu 20.04); cmake/glibc_compat.c says what gcc
# 12's static libstdc++ and libgcc need from a newer glibc. Empty: the host's glibc
# (Debian 12: 2.36).
#
# Included by the top-level CMakeLists.txt before the libraries are defined.
if(NOT TRAINRUN_PORTABLE)
  return()
endif()

# Optimised for size (-Os, not Release's -O3): the code a run touches is most of
# trainrun's resident memory (README "Install", Lean memory), and -Os makes the binary
# 7.3 MB instead of 10.1 (peak RSS at 8 ranks about 8.0 MiB instead of 9.5) with no
# difference seen in the launch or the log throughput; a launcher spends its time in
# system calls.
set(CMAKE_CXX_FLAGS_RELEASE "-Os -DNDEBUG")
set(CMAKE_C_FLAGS_RELEASE "-Os -DNDEBUG")

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

set(TRAINRUN_PORTABLE_SYSROOT "" CACHE PATH
    "glibc sysroot the portable trainrun is built against (scripts/portable-sysroot.sh)")
# trainrun_portable_exe: what the portable executable links beside its libraries.
add_library(trainrun_portable_exe INTERFACE)
if(TRAINRUN_PORTABLE_SYSROOT)
  set(sysroot ${TRAINRUN_PORTABLE_SYSROOT})
  set(multiarch x86_64-linux-gnu)
  if(NOT EXISTS ${sysroot}/usr/lib/${multiarch}/libc_nonshared.a)
    message(FATAL_ERROR "TRAINRUN_PORTABLE_SYSROOT ${sysroot} has no glibc: "
                        "scripts/portable-sysroot.sh makes one")
  endif()
  # The libraries' headers (fmt, hwloc, nlohmann, CLI11, yaml-cpp, OpenSSL, libcurl,
  # libxml2) are the host's, as their static archives are: every entry of the host's
  # include folders that the sysroot lacks is linked into two folders searched before
  # the sysroot's. glibc's and Linux's own headers come from the sysroot only.
  foreach(from IN ITEMS /usr/include/${multiarch} /usr/include)
    string(REPLACE "/" "_" name ${from})
    set(to ${CMAKE_BINARY_DIR}/portable-include/${name})
    file(REMOVE_RECURSE ${to})
    file(MAKE_DIRECTORY ${to})
    string(REPLACE /usr/include ${sysroot}/usr/include in_sysroot ${from})
    file(GLOB entries RELATIVE ${from} ${from}/*)
    foreach(entry IN LISTS entries)
      if(NOT EXISTS ${in_sysroot}/${entry})
        file(CREATE_LINK ${from}/${entry} ${to}/${entry} SYMBOLIC)
      endif()
    endforeach()
    include_directories(SYSTEM ${to})
  endforeach()
  add_compile_options(--sysroot=${sysroot})
  # The sysroot's crt*.o and libraries before the host's, which gcc's driver adds.
  # -pthread: glibc 2.31 keeps threads in libpthread.so.0 (FindThreads, run against
  # the host's glibc 2.36, found them in libc and adds nothing).
  add_link_options(--sysroot=${sysroot} -B${sysroot}/usr/lib/${multiarch}/
                   -L${sysroot}/usr/lib/${multiarch} -L${sysroot}/lib/${multiarch} -pthread)
  # Compiled into the executable itself (an object library's files would not reach
  # it through an INTERFACE library).
  target_sources(trainrun_portable_exe INTERFACE ${CMAKE_CURRENT_LIST_DIR}/glibc_compat.c)
endif()

# libstdc++ and libgcc linked in; symbols stripped. -no-pie: a position-independent
# executable is relocated at every start (21,600 relative relocations here), which
# writes about 95 pages of .data.rel.ro and the GOT: each a page fault and a private
# copy that the process holds for its whole life (1.2 MiB less RSS at 8 ranks, and a
# faster start, without it). The price is that the executable's own image is not
# placed at a random address (the libraries, heap and stacks still are), as with
# tini, dumb-init or Go programs.
add_link_options(-static-libstdc++ -static-libgcc -Wl,--as-needed -s -no-pie)
