"""Running the study: its inputs, profiles, plans, the machine's stack, the cluster, the CLI, predict."""
