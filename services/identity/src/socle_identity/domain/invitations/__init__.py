"""Invitations accepted: the membership and the role given once the invited person said yes."""
