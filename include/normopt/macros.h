#pragma once

/// NORMOPT_API marks the symbols that libnormopt exports. On Windows it
/// switches between dllexport (building the library) and dllimport (using
/// it); elsewhere it pins default visibility so the API stays exported even
/// when a consumer builds with -fvisibility=hidden.
#if defined(_WIN32)
#if defined(NORMOPT_BUILDING_LIBRARY)
#define NORMOPT_API __declspec(dllexport)
#else
#define NORMOPT_API __declspec(dllimport)
#endif
#else
#define NORMOPT_API __attribute__((visibility("default")))
#endif
