"""Development tooling: local multi-site fleets of real control planes with KWOK nodes, and their benchmarks. Never needed to run the operator or the agent."""
