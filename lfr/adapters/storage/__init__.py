"""Storage backends behind the UnitOfWork port, chosen by URL: memory://, sqlite:///..., postgresql://..."""
