"""``python -m batchjobs``: the same command line as ``batchjobs``."""

from batchjobs.cli import main

if __name__ == "__main__":
    main()
