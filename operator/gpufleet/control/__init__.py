"""The operator's control loop: lifecycle of placed workloads, scheduling, applying decisions."""
