# What every normopt CMake project (the library, tests/fuzz) does the same
# way before find_package(Torch). Include it with NORMOPT_ROOT set to the
# checkout's root.
#
# ccache halves rebuilds on small machines; used when present, never
# required.
find_program(NORMOPT_CCACHE ccache)
if(NORMOPT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${NORMOPT_CCACHE})
endif()

# LibTorch is found through CMAKE_PREFIX_PATH (a libtorch folder) or, failing
# that, the PyTorch wheel in the checkout's .venv
# (torch.utils.cmake_prefix_path).
if(NOT DEFINED Torch_DIR AND NOT CMAKE_PREFIX_PATH)
  set(_normopt_python "${NORMOPT_ROOT}/.venv/bin/python")
  if(EXISTS "${_normopt_python}")
    execute_process(
      COMMAND "${_normopt_python}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _normopt_torch_prefix
      OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE _normopt_torch_rc)
    if(_normopt_torch_rc EQUAL 0)
      list(APPEND CMAKE_PREFIX_PATH "${_normopt_torch_prefix}")
    endif()
  endif()
endif()

# fast_float (header-only; Debian libfast-float-dev): the CSV reader's number
# parsing. Private to the library: its installed package does not need it.
find_path(NORMOPT_FAST_FLOAT_INCLUDE fast_float/fast_float.h)
if(NOT NORMOPT_FAST_FLOAT_INCLUDE)
  message(FATAL_ERROR "normopt: fast_float not found (the CSV reader parses numbers "
    "with it). Install it (Debian/Ubuntu: apt-get install libfast-float-dev; "
    "scripts/setup.sh does) or pass -DNORMOPT_FAST_FLOAT_INCLUDE=<folder holding "
    "fast_float/fast_float.h>.")
endif()
# Added to include paths only where the compiler does not look already (an
# -isystem /usr/include breaks the C++ headers' #include_next).
set(NORMOPT_FAST_FLOAT_INCLUDE_DIRS "")
if(NOT NORMOPT_FAST_FLOAT_INCLUDE IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
  set(NORMOPT_FAST_FLOAT_INCLUDE_DIRS "${NORMOPT_FAST_FLOAT_INCLUDE}")
endif()
