"""Says hello, and where it runs: the interpreter, the machine and the TLS trust store it
found."""

import os
import platform
import ssl
import sys


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "world"
    paths = ssl.get_default_verify_paths()
    print(f"hello {name} from Python {platform.python_version()} on {platform.machine()} "
          f"as uid {os.getuid()}")
    print(f"CA bundle: {paths.cafile} ({os.path.getsize(paths.cafile)} bytes)")


if __name__ == "__main__":
    main()
