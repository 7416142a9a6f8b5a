"""The product's rules: entities, the state machine, credit vocabulary and errors.

Nothing here imports a framework, a driver or a client.
"""
