"""voxpipe-local: voxpipe backends that run offline, on this machine."""

__version__ = "0.1.0"
