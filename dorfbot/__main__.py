import sys

from dorfbot.cli import main

sys.exit(main())
