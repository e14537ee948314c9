"""The ``mamoru`` command line: one module per subcommand, a thin ``main``."""
