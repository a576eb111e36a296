"""The library's layering, checked on its sources (no build needed).

Modules (csrc/<module>/ and include/normopt/<module>/) depend only downward:

    util < ops, data < nn, optim < train < distributed, jit, deploy

A file includes its own module's private headers (csrc/<module>/...),
csrc/util/'s, and the public or detail headers (include/normopt/...) of its
own module or of a lower one; never a private header of another module, nor
a module beside or above its own. README.md ("Layout") says the same.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RANK = {"util": 0, "ops": 1, "data": 1, "nn": 2, "optim": 2, "train": 3,
        "distributed": 4, "jit": 4, "deploy": 4}
QUOTED = re.compile(r'\s*#\s*include\s+"([^"]+)"')
PUBLIC = re.compile(r"\s*#\s*include\s+<normopt/([a-z_]+)/")


def sources():
    """(module, file) for every C++ source and header of the library."""
    for top in (ROOT / "csrc", ROOT / "include" / "normopt"):
        for f in sorted(top.rglob("*")):
            rel = f.relative_to(top)
            if f.suffix in {".h", ".cpp", ".cu"} and len(rel.parts) > 1:
                yield rel.parts[0], f


def violations(module, path, text):
    """What `text` (the file `path` of `module`) includes against the rules."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        quoted = QUOTED.match(line)
        if quoted:
            target = (path.parent / quoted.group(1)).resolve()
            try:
                owner = target.relative_to(ROOT / "csrc").parts[0]
            except ValueError:
                owner = None
            if owner not in (module, "util"):
                found.append(f"{where} (another module's private header)")
        public = PUBLIC.match(line)
        if public and public.group(1) in RANK and public.group(1) != module:
            if RANK[public.group(1)] >= RANK[module]:
                found.append(f"{where} (a module beside or above {module})")
    return found


def test_modules_are_known():
    assert {module for module, _ in sources()} == set(RANK)


def test_includes_follow_the_layering():
    found = []
    for module, f in sources():
        found += violations(module, f, f.read_text())
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module, relpath, line", [
    ("train", "csrc/train/x.cpp", '#include "../nn/private.h"'),
    ("data", "csrc/data/x.cpp", "#include <normopt/nn/normalization.h>"),
    ("nn", "csrc/nn/x.cpp", "#include <normopt/optim/adam.h>"),
])
def test_the_check_catches_a_wrong_include(module, relpath, line):
    assert violations(module, ROOT / relpath, line)


def test_the_check_allows_a_right_include():
    path = ROOT / "csrc/train/x.cpp"
    text = ('#include "../util/files.h"\n#include "checkpoint.h"\n'
            "#include <normopt/nn/detail/serialize.h>\n"
            "#include <normopt/data/table.h>\n")
    assert violations("train", path, text) == []
