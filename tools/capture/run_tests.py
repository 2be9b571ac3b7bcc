#!/usr/bin/env python3
"""CTest entry point of the capture-tool tests (tests/CMakeLists.txt: python/capture).

Without torch, transformers, safetensors or pytest the tests cannot run: print
"skipped: <reason>" and exit 77, which CTest reads as Skipped (SKIP_RETURN_CODE in
tests/CMakeLists.txt), so a suite that ran nothing never shows as Passed. Otherwise run pytest on tools/capture/tests and return its exit
code; "no tests collected" (pytest exit code 5) counts as a failure, not a pass.
"""

import importlib
import os
import subprocess
import sys

REQUIRED = ("torch", "transformers", "safetensors", "tokenizers", "pytest")
PYTEST_NO_TESTS = 5
EXIT_SKIPPED = 77  # tests/CMakeLists.txt: SKIP_RETURN_CODE of python/capture


def main() -> int:
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except Exception as error:  # ImportError, or a broken install raising something else
            print(f"skipped: python module '{name}' is not importable ({error}); the capture "
                  f"tests need {', '.join(REQUIRED)}")
            return EXIT_SKIPPED
    here = os.path.dirname(os.path.abspath(__file__))
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               os.path.join(here, "tests"), *sys.argv[1:]]
    code = subprocess.call(command, cwd=here)
    if code == PYTEST_NO_TESTS:
        print("error: pytest collected no tests in tools/capture/tests")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
