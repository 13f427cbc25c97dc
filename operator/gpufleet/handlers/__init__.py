"""Kopf handlers, thin: they feed gpufleet's objects into the cache and start the operator."""
