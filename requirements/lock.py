"""Refresh the locks: every package a fresh install gets, pinned with its hashes.

    python3 requirements/lock.py          # the newest releases pyproject.toml allows

`test.txt` is what the README's test command and .ci/run install (the `test` extra);
`run.txt` is what the README's run command installs, at the same versions. Both carry the
build backend too, since the project is installed without build isolation (so that nothing
unpinned is fetched to build it). uv resolves for every platform and Python 3.11 and later.
After a refresh, run the whole suite before committing: that is the point of having a lock.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"


def compile_lock(out: Path, build_requires: str, *options: str) -> None:
    # The build backend comes in on standard input: the lock then names no temporary file.
    command = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", "-", *options]
    command += ["--universal", "--python-version=3.11", "--generate-hashes", "--upgrade", "--quiet"]
    command += ["--custom-compile-command=python3 requirements/lock.py", f"--output-file={out}"]
    subprocess.run(command, check=True, cwd=ROOT, input=build_requires, text=True)


def main() -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "uv"], check=True)
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    build_requires = "\n".join(build) + "\n"
    compile_lock(LOCKS / "test.txt", build_requires, "--extra=test")
    # The run lock takes its versions from the test lock, so both install the same releases.
    compile_lock(LOCKS / "run.txt", build_requires, "--constraint=requirements/test.txt")


if __name__ == "__main__":
    main()
