"""The operator's view of every cluster: the watch-fed cache, compact records, selectors, and the translation into the core's input."""
