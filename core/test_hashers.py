"""A cheap argon2 for the test suite: same algorithm and hash format as production, with
work factors small enough that creating a few hundred fixture users costs milliseconds."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 256
    parallelism = 1
