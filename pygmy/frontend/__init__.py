"""
The front end: the public HTTP API of the store.
"""
