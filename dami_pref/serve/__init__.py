"""``dami-pref serve``: an OpenAI-compatible endpoint over the interpolation runtime, a λ per
request chosen by the ranker, and a scheduler that serves one λ group at a time."""
