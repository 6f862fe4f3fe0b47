"""`python -m amplitude_dsr.cli` runs the amplitude-dsr command."""

from amplitude_dsr.cli.main import run

run()
