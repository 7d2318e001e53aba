"""
The order service: one order per copy bought.
"""
