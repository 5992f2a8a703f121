"""Planners over any WorldModel (encode / rollout): CEM, MPPI, random shooting, gradient; energies;
the MPC loop; the privileged simulator-as-world-model oracle."""
from planners.base import Planner
from planners.energy import NonFiniteEnergyError, latent_l1_energy
from planners.gradient import GradientPlanner
from planners.protocol import WorldModel
from planners.sampling import CEM, MPPI, RandomShooting

__all__ = [
    "CEM",
    "MPPI",
    "RandomShooting",
    "GradientPlanner",
    "Planner",
    "WorldModel",
    "latent_l1_energy",
    "NonFiniteEnergyError",
]
