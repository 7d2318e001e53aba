"""
Where the views are stored: a local file, or etcd.

Empty for now: the front end holds its views in memory (see
L{pygmy.frontend.views}); the views store comes with durable views.
"""
