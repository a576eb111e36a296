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
