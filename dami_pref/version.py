"""The package version and where the package lives (a leaf: it imports nothing)."""

from pathlib import Path

__version__ = "0.1.0"
PACKAGE_DIR = Path(__file__).resolve().parent
