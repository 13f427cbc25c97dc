"""Connections to the clusters that host sites: watches, dispatch of pods, fencing."""
