"""One module per subcommand; each imports its package only inside the handler."""
