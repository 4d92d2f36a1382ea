"""Command-line interface: ``hcmeasure <subcommand>``."""
