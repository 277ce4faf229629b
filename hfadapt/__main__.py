import sys

from hfadapt.cli import main

sys.exit(main())
