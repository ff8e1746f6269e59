"""Exit non-zero, naming each package, when the environment differs from a lock file (name==version lines)."""

import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.utils import canonicalize_name
from packaging.version import Version


def main(lock_path: str) -> int:
    wrong = []
    with open(lock_path, encoding="utf-8") as lock:
        lines = lock.read().splitlines()
    for line in lines:
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" not in line:
            continue
        name, pinned = (part.strip() for part in line.split("==", 1))
        try:
            installed = version(canonicalize_name(name))
        except PackageNotFoundError:
            wrong.append(f"{name}: not installed (lock: {pinned})")
            continue
        # a local build label (torch 2.13.0+cpu) is the same release as the lock's 2.13.0
        if Version(installed).public != Version(pinned).public:
            wrong.append(f"{name}: {installed} installed, lock says {pinned}")
    for problem in wrong:
        print(problem, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
