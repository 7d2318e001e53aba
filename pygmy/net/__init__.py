"""
HTTP plumbing shared by every role: the JSON site and its error mapping, the
treq client of the replicas, batching, validation, the listener, and the
routing of calls to a service's replicas with its balancers.
"""
