"""
Pygmy: a replicated online book store on Twisted.
"""

__version__ = "0.1.0"
