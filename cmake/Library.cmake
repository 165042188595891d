# libvkllm for embedders: one shared library (target vkllm_shared -> libvkllm.so, vkllm::vkllm) and
# one static archive (vkllm_static -> libvkllm.a, vkllm::vkllm_static), both made of the objects of
# vkllm_host, vkllm_kernels and vkllm_runtime (compiled once; the tools, tests and benches keep
# linking those static libraries), plus the version header, install rules, a pkg-config file and a
# CMake package. Included from the top-level CMakeLists.txt after the libraries' directories.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

configure_file(${PROJECT_SOURCE_DIR}/cmake/version.h.in ${PROJECT_BINARY_DIR}/include/vkllm/version.h @ONLY)

# Only the API is exported: every object is compiled with -fvisibility=hidden, and runtime/visibility.h
# (force-included) declares what vkllm/vkllm.h pulls in under default visibility first.
foreach(lib vkllm_host vkllm_kernels vkllm_runtime)
  set_target_properties(${lib} PROPERTIES C_VISIBILITY_PRESET hidden)
  target_include_directories(${lib} PUBLIC $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>)
  target_include_directories(${lib} PRIVATE ${PROJECT_SOURCE_DIR}/runtime/include ${PROJECT_SOURCE_DIR}/host/include)
  target_compile_options(${lib} PRIVATE "SHELL:-include ${PROJECT_SOURCE_DIR}/runtime/visibility.h")
endforeach()

# What the objects need at link time (the static libraries' own link interfaces name imported
# targets of their directories, which are not visible here).
pkg_check_modules(VKLLM_LIB_PCRE2 REQUIRED libpcre2-8)
find_package(HDF5 REQUIRED COMPONENTS C)
set(VKLLM_LIB_DEPS Vulkan::Vulkan Threads::Threads ${VKLLM_LIB_PCRE2_LINK_LIBRARIES} ${HDF5_C_LIBRARIES} m ${CMAKE_DL_LIBS})

set(VKLLM_LIB_OBJECTS $<TARGET_OBJECTS:vkllm_host> $<TARGET_OBJECTS:vkllm_kernels> $<TARGET_OBJECTS:vkllm_runtime>)
set(VKLLM_LIB_INCLUDES $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/runtime/include>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/host/include> $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

add_library(vkllm_shared SHARED ${VKLLM_LIB_OBJECTS})
target_link_libraries(vkllm_shared PRIVATE ${VKLLM_LIB_DEPS})
target_include_directories(vkllm_shared INTERFACE ${VKLLM_LIB_INCLUDES})
# No undefined symbols left for the loader to find (except under the sanitizers, whose runtime
# clang leaves to the executable); the soname carries the major version.
if(NOT VKLLM_SANITIZE)
  target_link_options(vkllm_shared PRIVATE -Wl,--no-undefined)
endif()
set_target_properties(vkllm_shared PROPERTIES OUTPUT_NAME vkllm EXPORT_NAME vkllm VERSION ${PROJECT_VERSION}
                      SOVERSION ${PROJECT_VERSION_MAJOR} LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib)
add_library(vkllm::vkllm ALIAS vkllm_shared)

add_library(vkllm_static STATIC ${VKLLM_LIB_OBJECTS})
# A static archive carries no dependencies: they are its users' link interface.
target_link_libraries(vkllm_static INTERFACE ${VKLLM_LIB_DEPS})
target_include_directories(vkllm_static INTERFACE ${VKLLM_LIB_INCLUDES})
set_target_properties(vkllm_static PROPERTIES OUTPUT_NAME vkllm EXPORT_NAME vkllm_static
                      ARCHIVE_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib)
add_library(vkllm::vkllm_static ALIAS vkllm_static)

# The headers vkllm/vkllm.h includes, directly or not (tests/install compiles against exactly these).
set(VKLLM_PUBLIC_HEADERS
    ${PROJECT_SOURCE_DIR}/runtime/include/vkllm/vkllm.h ${PROJECT_BINARY_DIR}/include/vkllm/version.h)
foreach(h device model chain pipeline pool)
  list(APPEND VKLLM_PUBLIC_HEADERS ${PROJECT_SOURCE_DIR}/runtime/include/vkllm/${h}.h)
endforeach()
foreach(h status sampler tokenizer mkmodel phi3 gguf quant)
  list(APPEND VKLLM_PUBLIC_HEADERS ${PROJECT_SOURCE_DIR}/host/include/vkllm/${h}.h)
endforeach()

install(TARGETS vkllm_shared vkllm_static EXPORT vkllmTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${VKLLM_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vkllm)
foreach(tool vkllm mkmodel gguf-dump)
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

set(VKLLM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vkllm)
install(EXPORT vkllmTargets NAMESPACE vkllm:: DESTINATION ${VKLLM_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/vkllm-config.cmake.in
                              ${PROJECT_BINARY_DIR}/vkllm-config.cmake INSTALL_DESTINATION ${VKLLM_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vkllm-config-version.cmake VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vkllm-config.cmake ${PROJECT_BINARY_DIR}/vkllm-config-version.cmake
        DESTINATION ${VKLLM_CMAKE_DIR})

# pkg-config: `pkg-config --cflags --libs vkllm` (shared), add --static for libvkllm.a.
list(GET HDF5_C_LIBRARIES 0 _vkllm_hdf5)
get_filename_component(_vkllm_hdf5_dir ${_vkllm_hdf5} DIRECTORY)
get_filename_component(_vkllm_hdf5_name ${_vkllm_hdf5} NAME_WE)
string(REGEX REPLACE "^lib" "" _vkllm_hdf5_name ${_vkllm_hdf5_name})
set(VKLLM_PC_LIBS_PRIVATE "-L${_vkllm_hdf5_dir} -l${_vkllm_hdf5_name} -lm -pthread")
foreach(l ${CMAKE_DL_LIBS})
  string(APPEND VKLLM_PC_LIBS_PRIVATE " -l${l}")
endforeach()
file(RELATIVE_PATH VKLLM_PC_TO_PREFIX /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
configure_file(${PROJECT_SOURCE_DIR}/cmake/vkllm.pc.in ${PROJECT_BINARY_DIR}/vkllm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/vkllm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
