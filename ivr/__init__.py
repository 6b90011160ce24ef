"""IVR trees, pure: the node model (ivr.model), its static checks (ivr.validate), the
walker state machine one call runs through (ivr.walker, returning ivr.actions), and
working-hours schedules (ivr.schedule). No YAML, clock or socket here: acd builds trees from
the configuration and carries out the walker's actions."""
