"""One small module per group of routes; each exposes `router`."""
