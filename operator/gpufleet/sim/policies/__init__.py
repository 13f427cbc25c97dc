"""Scheduling policies the simulator compares side by side."""
