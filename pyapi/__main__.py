from pyapi.cli import main

raise SystemExit(main())
