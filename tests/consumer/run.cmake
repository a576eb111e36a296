# ctest driver: install the build tree, configure/build the consumer against
# the installed package only, run it. Invoked with -DBUILD_DIR -DSOURCE_DIR
# -DWORK_DIR -DTORCH_DIR [-DLAUNCHER] [-DEXTRA_ARGS=-Da=b|-Dc=d] (more
# configure arguments, '|'-separated).
file(REMOVE_RECURSE "${WORK_DIR}")
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: command failed (${rc}): ${ARGV}")
  endif()
endfunction()
run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
# The package names LibTorch by target, never by a path of this machine.
get_filename_component(torch_root "${TORCH_DIR}/../../.." ABSOLUTE)
file(GLOB targets_files "${WORK_DIR}/prefix/lib*/cmake/normopt/normoptTargets*.cmake")
foreach(f IN LISTS targets_files)
  file(READ "${f}" text)
  string(FIND "${text}" "${torch_root}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "consumer test: ${f} names a path into LibTorch (${torch_root})")
  endif()
endforeach()
# <normopt/config.h> is installed, and distributed.h only with the module.
file(READ "${WORK_DIR}/prefix/include/normopt/config.h" config)
string(REGEX MATCH "#define NORMOPT_HAVE_DISTRIBUTED ([01])" _ "${config}")
if(CMAKE_MATCH_1 STREQUAL "0" AND EXISTS "${WORK_DIR}/prefix/include/normopt/distributed")
  message(FATAL_ERROR "consumer test: distributed.h installed by a build without it")
endif()
if(CMAKE_MATCH_1 STREQUAL "1" AND NOT EXISTS "${WORK_DIR}/prefix/include/normopt/distributed/distributed.h")
  message(FATAL_ERROR "consumer test: distributed.h missing from a build with it")
endif()
set(extra)
if(LAUNCHER)
  list(APPEND extra "-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}")
endif()
if(EXTRA_ARGS)
  string(REPLACE "|" ";" more "${EXTRA_ARGS}")
  list(APPEND extra ${more})
endif()
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build"
    "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" "-DTorch_DIR=${TORCH_DIR}"
    -DCMAKE_BUILD_TYPE=Release ${extra})
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
