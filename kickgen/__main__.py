from kickgen.cli import main

raise SystemExit(main())
