"""Reading speed and peak memory of normopt's CSV reader next to pandas and
pyarrow, on one generated numeric CSV file, in one run.

The file: a header ``x1,...,xF,y`` then ``--rows`` rows of F + 1 numbers (F =
``--features``), the last column the target, as real data looks: floats with
6 significant digits (``%.6g``), columns of mixed magnitudes (1e-2 to 1e4),
some signed and some mostly positive, ``y`` a noisy linear function of the
x's. A fixed numpy seed makes it the same bytes on every machine. It is
written once (next to it, FILE.meta records how) and reused while the meta
file matches.

Readers, each measurement in a fresh process (so its peak RSS is its own):
  normopt            bench_csv FILE --threads N [--float64]: data::read_csv,
                     the whole file into (N, F) features and (N, 1) targets
  normopt stream     bench_csv FILE --stream 65536: data::CsvReader, chunks of
                     65,536 rows (1 thread)
  pandas (c)         pd.read_csv(FILE, engine="c", dtype=np.float32/64);
                     single-threaded, so run once per dtype, threads 1
  pandas (pyarrow)   pd.read_csv(FILE, engine="pyarrow", dtype=...), with
                     pyarrow's CPU and I/O pools set to N threads
  pyarrow            pyarrow.csv.read_csv(FILE, ReadOptions(use_threads=N>1),
                     ConvertOptions(column_types={every column: float32/64})),
                     with pyarrow.set_cpu_count(N), set_io_thread_count(N)

Times are the read alone: what each call returns (normopt's tensors, a pandas
DataFrame, an Arrow Table), with no conversion to numpy or torch afterwards.
Each reader reads the file ``--repeat`` times in its process; the table shows
the best and the median time, MB/s = file bytes / best time / 1e6, the
process's peak RSS (getrusage ru_maxrss, which includes the interpreter or
LibTorch and the imported libraries) and "+read", the peak minus the RSS
measured just before the first read. The file is read once beforehand so
that every reader finds it in the page cache.

Run from the repository root, after building bench_csv
(``cmake --build build --target bench_csv``; scripts/bench.sh does both):

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/csv_readers.py --bench-csv build/benchmarks/bench_csv

Options: --rows (1,000,000), --features (10), --file (a path in the temp
folder), --bench-csv (build/benchmarks/bench_csv), --repeat (3), --threads
("1,2"), --markdown (print the table as Markdown). ``--child`` is internal:
the mode the pandas and pyarrow measurements run in.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

GENERATOR = 1  # bump when the file's content changes
STREAM_ROWS = 65536


# --------------------------------------------------------------------------
# The data file


def meta_path(path):
    return path + ".meta"


def generate(path, rows, features, seed=0):
    """Writes the CSV file and its meta file (see the module docstring)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Per column: a magnitude 1e-2 .. 1e4 and, for every third column, an
    # offset that keeps it mostly positive (prices, counts, ages).
    scales = np.array([10.0 ** ((3 * j) % 7 - 2) for j in range(features)])
    offsets = np.where(np.arange(features) % 3 == 2, 2.5 * scales, 0.0)
    weights = rng.uniform(-2.0, 2.0, features) / scales
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(",".join([f"x{j + 1}" for j in range(features)] + ["y"]) + "\n")
        chunk = 100_000
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = rng.standard_normal((n, features)) * scales + offsets
            y = x @ weights + 0.1 * rng.standard_normal(n)
            np.savetxt(f, np.column_stack([x, y]), fmt="%.6g", delimiter=",")
    os.replace(tmp, path)
    meta = {
        "generator": GENERATOR,
        "rows": rows,
        "features": features,
        "seed": seed,
        "bytes": os.path.getsize(path),
    }
    with open(meta_path(path), "w") as f:
        json.dump(meta, f)
    return meta


def ensure_file(path, rows, features):
    """Reuses ``path`` when its meta file matches, else writes it."""
    try:
        with open(meta_path(path)) as f:
            meta = json.load(f)
        if (
            meta.get("generator") == GENERATOR
            and meta.get("rows") == rows
            and meta.get("features") == features
            and meta.get("bytes") == os.path.getsize(path)
        ):
            print(f"reusing {path}", file=sys.stderr)
            return meta
    except (OSError, ValueError):
        pass
    print(f"writing {path} ({rows:,} rows, {features + 1} columns)...",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    meta = generate(path, rows, features)
    print(f"  {meta['bytes'] / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return meta


def warm_cache(path):
    """Reads the file once so every reader finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# --------------------------------------------------------------------------
# Child mode: one reader, --repeat reads, one line of JSON (like bench_csv)


def rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(args):
    import numpy as np

    np_dtype = np.float64 if args.dtype == "float64" else np.float32
    threads = args.threads[0]
    if args.child in ("pyarrow", "pandas-pyarrow"):
        import pyarrow as pa

        pa.set_cpu_count(threads)
        pa.set_io_thread_count(threads)
    if args.child in ("pandas-c", "pandas-pyarrow"):
        import pandas as pd

        engine = "c" if args.child == "pandas-c" else "pyarrow"

        def read():
            df = pd.read_csv(args.file, engine=engine, dtype=np_dtype)
            return df.shape

    elif args.child == "pyarrow":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        with open(args.file) as f:
            names = f.readline().rstrip("\r\n").split(",")
        arrow_type = pa.float64() if args.dtype == "float64" else pa.float32()
        read_options = pacsv.ReadOptions(use_threads=threads > 1)
        convert_options = pacsv.ConvertOptions(
            column_types={name: arrow_type for name in names})

        def read():
            table = pacsv.read_csv(args.file, read_options=read_options,
                                   convert_options=convert_options)
            return table.num_rows, table.num_columns

    else:
        sys.exit(f"csv_readers: unknown --child {args.child}")

    base = rss_mb()
    seconds = []
    shape = None
    for _ in range(args.repeat):
        shape = None  # one result alive at a time
        start = time.perf_counter()
        shape = read()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({
        "reader": args.child,
        "threads": threads,
        "dtype": args.dtype,
        "rows": shape[0],
        "features": shape[1] - 1,  # the target is a column here
        "bytes": os.path.getsize(args.file),
        "best_s": min(seconds),
        "median_s": statistics.median(seconds),
        "peak_rss_mb": rss_mb(),
        "base_rss_mb": base,
    }))


# --------------------------------------------------------------------------
# Parent: runs every measurement, prints the table


def run_json(cmd):
    """Runs ``cmd``; (its JSON line, None) or (None, why it failed)."""
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        return None, str(e)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        why = lines[0] if lines else ""
        return None, f"exit {result.returncode}: {why}"[:200]
    for line in reversed(result.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line), None
            except ValueError:
                break
    return None, "no JSON line in its output"


def versions():
    out = []
    for name in ("torch", "numpy", "pandas", "pyarrow"):
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measurements(args, file):
    """(label, threads, dtype, command) for every measurement, in order."""
    me = [sys.executable, os.path.abspath(__file__), "--file", file,
          "--repeat", str(args.repeat)]
    out = []
    for dtype in ("float32", "float64"):
        for t in args.threads:
            cmd = [args.bench_csv, file, "--threads", str(t),
                   "--repeat", str(args.repeat)]
            if dtype == "float64":
                cmd.append("--float64")
            out.append(("normopt", t, dtype, cmd))
        cmd = [args.bench_csv, file, "--stream", str(STREAM_ROWS),
               "--repeat", str(args.repeat)]
        if dtype == "float64":
            cmd.append("--float64")
        out.append((f"normopt stream {STREAM_ROWS}", 1, dtype, cmd))
        out.append(("pandas (c)", 1, dtype,
                    me + ["--child", "pandas-c", "--threads", "1",
                          "--dtype", dtype]))
        for t in args.threads:
            out.append(("pandas (pyarrow)", t, dtype,
                        me + ["--child", "pandas-pyarrow", "--threads", str(t),
                              "--dtype", dtype]))
        for t in args.threads:
            out.append(("pyarrow", t, dtype,
                        me + ["--child", "pyarrow", "--threads", str(t),
                              "--dtype", dtype]))
    return out


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def print_table(rows, markdown):
    header = ["reader", "threads", "dtype", "best s", "median s", "MB/s",
              "peak RSS MB", "+read MB"]
    body = []
    for r in rows:
        body.append([
            r["label"], str(r["threads"]), r["dtype"],
            fmt(r.get("best_s"), ".3f"), fmt(r.get("median_s"), ".3f"),
            fmt(r.get("mb_s"), ".1f"), fmt(r.get("peak_rss_mb"), ".0f"),
            fmt(r.get("read_mb"), ".0f"),
        ])
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        for b in body:
            print("| " + " | ".join(b) + " |")
        return
    widths = [max(len(x[i]) for x in [header] + body) for i in range(len(header))]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for b in body:
        print(line(b))


def parse_threads(text):
    try:
        threads = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(
            f"want a comma-separated list of thread counts, like 1,2; not {text!r}")
    return threads


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--file", help="the CSV file (default: in the temp folder)")
    parser.add_argument("--bench-csv", default="build/benchmarks/bench_csv",
                        help="the bench_csv binary")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=parse_threads, default=[1, 2],
                        help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=["float32", "float64"],
                        default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.features < 1 or args.repeat < 1:
        parser.error("--rows, --features and --repeat must be at least 1")

    if args.child:
        child(args)
        return

    file = args.file or os.path.join(
        tempfile.gettempdir(),
        f"normopt_bench_{args.rows}x{args.features}.csv")
    meta = ensure_file(file, args.rows, args.features)
    warm_cache(file)
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    if max(args.threads) > usable:
        print(f"warning: {max(args.threads)} threads asked, {usable} CPUs usable",
              file=sys.stderr)

    results, notes = [], []
    bench_missing = not os.path.exists(args.bench_csv)
    if bench_missing:
        notes.append(f"normopt: n/a, {args.bench_csv} not found "
                     "(build it: cmake --build build --target bench_csv)")
        print("  " + notes[-1], file=sys.stderr)
    for label, threads, dtype, cmd in measurements(args, file):
        row = {"label": label, "threads": threads, "dtype": dtype}
        if label.startswith("normopt") and bench_missing:
            results.append(row)
            continue
        data, why = run_json(cmd)
        if data is None:
            note = f"{label}, {threads} thread(s), {dtype}: n/a ({why})"
            print("  " + note, file=sys.stderr)
            notes.append(note)
        else:
            best = data["best_s"]
            row.update(
                best_s=best,
                median_s=data["median_s"],
                mb_s=meta["bytes"] / best / 1e6 if best > 0 else None,
                peak_rss_mb=data["peak_rss_mb"],
                read_mb=(data["peak_rss_mb"] - data["base_rss_mb"]
                         if "base_rss_mb" in data else None),
            )
            if data["rows"] != args.rows or data["features"] != args.features:
                notes.append(
                    f"{label}, {threads} thread(s), {dtype}: read "
                    f"{data['rows']} rows x {data['features']} features, "
                    f"expected {args.rows} x {args.features}")
        results.append(row)

    print()
    print("command: " + shlex.join([sys.executable] + sys.argv))
    print(f"host: {cpu_model()}, {cpus} CPUs ({usable} usable), "
          f"{platform.system()} {platform.release()}")
    print(f"versions: Python {platform.python_version()}, {versions()}")
    print(f"file: {file}, {args.rows:,} rows x {args.features + 1} columns, "
          f"{meta['bytes'] / 1e6:.1f} MB; {args.repeat} read(s) per process")
    print()
    print_table(results, args.markdown)
    for note in notes:
        print(("- " if args.markdown else "note: ") + note)


if __name__ == "__main__":
    main()
