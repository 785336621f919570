"""lfr: a live facial recognition watchlist matcher, armed only inside authorised deployment windows."""

__version__ = "0.1.0"
