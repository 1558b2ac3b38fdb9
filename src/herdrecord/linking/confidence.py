"""The probability that a link is right, from how the record's own scores are spread.

Each cluster of a pen-day is scored against every animal it could be. The score of the animal
it really is follows one distribution, the scores of the others another; both are learned from
the run itself (the chosen animal's scores and the rest, robustly: median and MAD, so the few
wrong choices barely move them). Given one identity's row of scores, each candidate's weight
is its likelihood ratio (Gaussians of one shared spread, so the ratio grows with the score).
A pen-day's identities are one assignment (two identities are never one animal), so the
chance that an identity is each animal is the marginal of that assignment: the weights
balanced over rows and columns (Sinkhorn). A link's confidence is that chance for the animal
it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from herdrecord.linking.assignment import NEG

MIN_SCORES = 10  # chosen scores (identity-days) needed before the spread is trusted
MAX_KEPT = 200_000  # scores kept per kind (the earliest go first)
LOG_RATIO_CLIP = 30.0


@dataclass
class ScoreSpread:
    """The scores a run has seen: of chosen animals, and of the others in the same rows."""

    chosen: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)

    def add(self, scores: np.ndarray, choice: np.ndarray) -> None:
        """Add a pen-day's scores (k, a) and each cluster's chosen column (or -1)."""
        usable = scores > NEG / 2
        for row in np.flatnonzero(choice >= 0):
            column = int(choice[row])
            self.chosen.append(float(scores[row, column]))
            rest = usable[row].copy()
            rest[column] = False
            self.others.extend(scores[row, rest].tolist())
        del self.chosen[:-MAX_KEPT], self.others[:-MAX_KEPT]

    def probabilities(self, scores: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """Return each cluster's probability (k,) that its chosen animal is right (NaN where
        unknown, or while the run has seen too few scores)."""
        out = np.full(len(choice), np.nan)
        if len(self.chosen) < MIN_SCORES or len(self.others) < MIN_SCORES:
            return out
        same_mean, same_sd = _robust(np.array(self.chosen))
        other_mean, other_sd = _robust(np.array(self.others))
        usable = scores > NEG / 2
        # One shared spread: the log ratio is then linear in the score, so a higher score never
        # counts against an animal (unequal spreads would, far above the genuine mean).
        variance = (same_sd**2 + other_sd**2) / 2
        ratio = (same_mean - other_mean) / variance * (scores - (same_mean + other_mean) / 2)
        # Only a row's differences count (each identity's weights may be scaled at will), so
        # the clip is taken below the row's best: an absolute clip made two animals both far
        # above the genuine mean (a near-twin and the animal itself) tie at one half.
        best = np.max(np.where(usable, ratio, -np.inf), axis=1, keepdims=True)
        best = np.where(np.isfinite(best), best, 0.0)
        ratio = np.where(usable, np.clip(ratio - best, -LOG_RATIO_CLIP, 0.0), -np.inf)
        linked = np.flatnonzero(choice >= 0)
        if len(linked) == 0:
            return out
        # One identity per chosen animal (its clusters share its row of scores): the links of
        # a pen-day are one assignment, so an animal another identity holds is no rival. An
        # identity its own row cannot score (an animal enrolled today) has no confidence, and
        # takes no part.
        columns, first = np.unique(choice[linked], return_index=True)
        rows = linked[first]
        scored = usable[rows, columns]
        chance = dict.fromkeys(columns.tolist(), np.nan)
        if scored.any():
            r = ratio[rows[scored]]
            marginal = _assignment_marginals(np.exp(r - r.max(axis=1, keepdims=True)))
            held = marginal[np.arange(int(scored.sum())), columns[scored]]
            chance.update(zip(columns[scored].tolist(), held.tolist(), strict=True))
        for row in linked.tolist():
            out[row] = float(chance[int(choice[row])])
        return out


def _assignment_marginals(weights: np.ndarray, rounds: int = 200) -> np.ndarray:
    """Return the chance (g, a) that each identity is each animal when the g identities are a
    one-to-one assignment to a >= g animals weighted by `weights`: the Sinkhorn balancing of
    the weights (the Bethe approximation of the permanent's marginals), with a - g empty
    slots for the animals not seen."""
    g, a = weights.shape
    square = np.vstack([weights, np.ones((max(a - g, 0), a))]) if a > g else weights.copy()
    for _ in range(rounds):
        square /= np.maximum(square.sum(axis=1, keepdims=True), 1e-300)
        column = square.sum(axis=0, keepdims=True)
        square /= np.maximum(column, 1e-300)
        if np.allclose(square.sum(axis=1), 1.0, atol=1e-6):
            break
    square /= np.maximum(square.sum(axis=1, keepdims=True), 1e-300)
    return np.asarray(square[:g])


def _robust(values: np.ndarray) -> tuple[float, float]:
    centre = float(np.median(values))
    spread = float(1.4826 * np.median(np.abs(values - centre)))
    return centre, max(spread, 1e-3)
