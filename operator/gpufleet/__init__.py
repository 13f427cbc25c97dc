"""gpufleet: one fairly shared, sovereignty-aware GPU fleet across sites."""

__version__ = "0.1.0"
