"""What travels between MedFlow's processes: small typed messages of ids, hashes and scores.

A layer of its own below ``db`` and ``workers`` so that the inference worker (which never
touches the database) and the collector (which writes it) share one definition.
"""
