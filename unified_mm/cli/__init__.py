"""The `umm` command line."""
