"""The forecast model's constants, shared by its plain-Python (`forecast`) and numpy
(`forecast_vectorised`) implementations."""

SEASON = 7
Z_80 = 1.2816
PHI = 0.9  # trend damping: long horizons flatten instead of extrapolating a line forever
ALPHAS = (0.1, 0.2, 0.35, 0.5)
GAMMAS = (0.05, 0.15, 0.3)
BETA = 0.05
TINY = 1e-9

# (days × series) or (horizon × series): a list of rows, one value per series.
Matrix = list[list[float]]
