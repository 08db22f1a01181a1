"""Placement of agents brokered from ProConnect in their commune's organization, by SIRET."""
