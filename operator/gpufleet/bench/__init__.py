"""Benchmarks of the scheduling core on synthetic fleets (`gpufleet bench core`)."""
