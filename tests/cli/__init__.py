"""The command line as a user runs it: every command, every bad input."""
