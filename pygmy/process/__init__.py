"""What every Pygmy daemon shares: its command-line options, logs and metrics."""
