"""Cold start: `import function_app` in a fresh interpreter (wall time, peak RSS) beside three baselines.

- `interpreter`: an empty interpreter (`pass`).
- `azure_functions_alone`: `import azure.functions`, the one library a Python function app cannot avoid: the
  Functions Python worker imports it itself before it loads function_app.py (the bindings' types), and every
  trigger's decorator comes from it. `product_import_seconds` is `import function_app` minus this: everything the
  product adds to a cold start, its own modules and every other library they pull in (pydantic, OpenTelemetry,
  ...). Issue 24's target (point 4, "<= 40 ms beyond its SDKs") is on this figure.
- `sdks_alone`: every third-party module `import function_app` loads, imported alone in the same order (every
  module in `sys.modules` afterwards whose top-level package is neither the standard library nor the project's).
  `project_modules_seconds` is `import function_app` minus this: the project's own modules given the libraries
  they import; it hides the cost of a library the product imports needlessly (the library is then in both), so it
  is not the issue's figure.

Each figure is the median (and the fastest) of `runs` fresh processes, taken in turns; `cpu_seconds` is the
child's own CPU time for the same import (process_time), steadier than wall time when other work loads the machine
(an import is single-threaded and CPU-bound once the files are cached); the `*_paired_cpu_seconds` figures are the
median of each turn's difference in CPU time, the steadiest (the difference of two wall-time medians swung from +31
to +52 ms for one code in issue 24's runs). Peak RSS is the child's VmHWM (ru_maxrss would carry the parent's
high-water mark across fork and exec).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "bcjobs", "function_app")
PROJECT = (*PACKAGES, "__main__")  # a `python -c` probe is __main__

_MEASURE = """
import json, sys, time
started, cpu_started = time.perf_counter(), time.process_time()
{body}
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": hwm / 1024, "modules": list(sys.modules)}}))
"""

_SDKS = """
import importlib
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def _measure(body: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - this interpreter on a fixed script
        [sys.executable, "-c", _MEASURE.format(body=body)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def third_party(modules: list[str]) -> list[str]:
    """The modules of `modules` outside the standard library and the project, in order."""
    stdlib = set(sys.stdlib_module_names)
    return [m for m in modules if m.split(".")[0] not in stdlib and m.split(".")[0] not in PROJECT]


def cold_start(env: dict[str, str], runs: int = 11) -> dict[str, Any]:
    """Medians over `runs` fresh interpreters of: nothing, azure.functions alone, the SDKs alone, `import
    function_app`."""
    # What the product sets for itself (shared/settings/model.py) is measured as it sets it, not as inherited from
    # this process, which set it too if it imported the settings.
    env = {name: value for name, value in env.items() if name != "PYDANTIC_DISABLE_PLUGINS"}
    probe = _measure("import function_app", env)
    sdks = third_party(probe["modules"])
    bodies = {
        "interpreter": "pass",
        "azure_functions_alone": "import azure.functions",
        "sdks_alone": _SDKS.format(modules=sdks),
        "function_app": "import function_app",
    }
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in bodies}
    for _ in range(runs):
        for name, body in bodies.items():
            samples[name].append(_measure(body, env))

    def median(name: str, key: str) -> float:
        return round(float(statistics.median(float(s[key]) for s in samples[name])), 3)

    def paired(name: str, baseline: str, key: str) -> float:
        """The median of each round's difference: the rounds' common drift (a busier machine now and then)
        cancels, which a difference of two medians keeps."""
        pairs = zip(samples[name], samples[baseline], strict=True)
        return round(float(statistics.median(float(a[key]) - float(b[key]) for a, b in pairs)), 3)

    figures: dict[str, Any] = {
        name: {
            "seconds": median(name, "seconds"),
            "min_seconds": round(min(float(s["seconds"]) for s in samples[name]), 3),
            "cpu_seconds": median(name, "cpu_seconds"),
            "peak_rss_mib": median(name, "peak_rss_mib"),
        }
        for name in bodies
    }
    app, worker, alone = figures["function_app"], figures["azure_functions_alone"], figures["sdks_alone"]
    figures |= {
        "sdk_modules": len(sdks),
        "sdk_packages": sorted({m.split(".")[0] for m in sdks if not m.startswith("_")}),
        "project_modules": len([m for m in probe["modules"] if m.split(".")[0] in PACKAGES]),
        "product_import_seconds": round(app["seconds"] - worker["seconds"], 3),
        "product_import_ratio": round(app["seconds"] / worker["seconds"], 3),
        "product_import_cpu_seconds": round(app["cpu_seconds"] - worker["cpu_seconds"], 3),
        "product_rss_mib": round(app["peak_rss_mib"] - worker["peak_rss_mib"], 1),
        "project_modules_seconds": round(app["seconds"] - alone["seconds"], 3),
        "project_modules_paired_cpu_seconds": paired("function_app", "sdks_alone", "cpu_seconds"),
        "product_import_paired_cpu_seconds": paired("function_app", "azure_functions_alone", "cpu_seconds"),
        "runs": runs,
    }
    return figures
