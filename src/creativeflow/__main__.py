import sys

from creativeflow.cli import main

sys.exit(main())
