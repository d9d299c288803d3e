"""ZooKeeper fixtures (standalone server and 3-node ensemble on loopback)."""
