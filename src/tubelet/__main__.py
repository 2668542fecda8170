import sys

from tubelet.cli.main import main

sys.exit(main())
