"""The durable engine: runs and steps as rows, leases, retries, dead letters, schedules."""
