"""The `modelctl` command line: parse, call the registry, render."""
