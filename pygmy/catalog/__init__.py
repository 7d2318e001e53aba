"""
The catalog service: books with title, topic, cost and stock.
"""
