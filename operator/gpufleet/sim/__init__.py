"""The trace-driven simulator: replays of traces on simulated fleets, under the real core and baseline policies."""
