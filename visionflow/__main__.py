from visionflow.cli import main

raise SystemExit(main())
