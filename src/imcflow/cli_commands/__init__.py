"""One module per subcommand; each defines ``register(subparsers)``. Modules starting with ``_`` are
shared helpers, not commands."""
