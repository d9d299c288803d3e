"""Coordination internals (the public names are in :mod:`flowcoord.coordination`): the job
board contract, the in-memory twin, the ZooKeeper session layer and board, the conductor."""
