"""metalight command line: ``python cli.py fit|validate|test --config configs/<experiment>.yaml``."""

from metalight.cli import main

if __name__ == "__main__":
    main()
