from blocwatch.cli import main

raise SystemExit(main())
