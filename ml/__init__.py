"""CXR Studio headless core: imaging, models, inference, explanation, training, CLI.

Nothing in this package imports Qt. Not for diagnostic use.
"""

__version__ = "0.1.0"
DISCLAIMER = "Not for diagnostic use."
