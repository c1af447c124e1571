"""`python -m jaxgeo` is the `jaxgeo` command."""
import sys

from jaxgeo.cli import main

if __name__ == "__main__":
  sys.exit(main())
