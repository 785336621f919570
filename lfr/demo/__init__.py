"""`lfr demo`: the whole product on one machine, end to end.

A real matcher (embedded SQLite) with the officers' tablet, a watchlist enrolled from face images, an
authorised deployment window, and lfr's own camera node watching a generated clip in which watchlisted
people and passers-by walk past: alerts only inside the window, nothing kept of anyone else, an intact
audit chain. `lfr demo --synthetic` runs the older flow with synthetic embeddings and no camera.
"""
