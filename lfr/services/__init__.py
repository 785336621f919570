"""Use cases: each takes an identified principal, runs in one unit of work and audits what it changed."""
