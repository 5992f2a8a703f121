"""Planners over any WorldModel (encode / rollout): CEM, MPPI, random shooting, gradient."""
