# The Debian package, trainrun_<version>_amd64.deb (README "Install"), made by CPack from
# every install() rule: the trainrun binary, what other folders install (Python
# modules), the README and the Debian copyright and changelog files lintian asks for.
# scripts/build.sh --portable makes it from the portable build, whose only shared
# library is glibc 2.31 or newer (Depends below); otherwise dpkg-shlibdeps writes
# Depends from the binary. libcurl and
# libxml2, which the portable build loads only for object stores and https:// data, are
# Recommends. lintian's one remaining tag, no-manual-page, stands: trainrun has no
# manual page yet (`trainrun help` and the README, installed here, document it).
#
# Included at the end of the top-level CMakeLists.txt.
set(doc_dir share/doc/trainrun)
# (An image build copies only the sources, without the README.)
if(EXISTS ${CMAKE_SOURCE_DIR}/README.md)
  install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${doc_dir})
endif()
install(FILES ${CMAKE_CURRENT_LIST_DIR}/debian/copyright DESTINATION ${doc_dir})
# Debian wants the changelog compressed with gzip -9n (no name, no time stamp); the
# version has no Debian revision (a native package), so it is changelog.gz. Made when
# CMake configures, so that `cmake --install` after building one target finds it.
set(changelog ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz)
execute_process(COMMAND gzip -9nc ${CMAKE_CURRENT_LIST_DIR}/debian/changelog
                OUTPUT_FILE ${changelog} COMMAND_ERROR_IS_FATAL ANY)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/debian/changelog)
install(FILES ${changelog} DESTINATION ${doc_dir})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME trainrun)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "on-node runtime for distributed ML training jobs")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
       "trainrun runs one node of a training job: it lays out the source,\n"
       "prepares data, meets the other nodes, binds ranks to GPUs, CPUs and NICs,\n"
       "supervises them fail-fast and uploads outputs and logs to run history.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "trainrun maintainers <trainrun@example.org>")
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
if(TRAINRUN_PORTABLE_SYSROOT)
  # Built against glibc 2.31 (cmake/portable.cmake): dpkg-shlibdeps would read the
  # build machine's (Debian 12) symbols files, which ask glibc 2.34 of any program that
  # links libpthread.so.0 (a stub since 2.34), so the floor is written here;
  # tests/portable/portable_test.sh checks it and installs the package on Debian 11.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6 (>= 2.31)")
else()
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libcurl4 | libcurl4t64, libxml2")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
