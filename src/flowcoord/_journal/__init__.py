"""Durability layer: journal entries, the backend contract, the group-commit front end."""
