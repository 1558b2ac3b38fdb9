"""SimulationConfig: the size of a synthetic herd and every rate that shapes it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Any

from herdrecord.errors import InvalidInput


@dataclass(frozen=True)
class SimulationConfig:
    """Describe a synthetic pig barn: herd, pens, cameras, and the rates of what happens."""

    # --- herd and barn ---------------------------------------------------------------
    animals: int = 40  # grow-finish pigs present on the first day
    pens: int = 4  # grow-finish pens; one edge device ("dev-01" ...) per pen
    days: int = 21  # simulated days from `start`
    seed: int = 0  # seeds every random draw: the same config gives byte-identical output
    start: date = date(2026, 9, 1)  # first simulated day (days run 00:00-24:00 UTC)
    farm_id: str = "farm-a"  # farm id written into every batch

    # --- edge devices ----------------------------------------------------------------
    cameras_per_pen: int = 1  # overhead cameras per pen ("cam1" ...), all on the pen's device
    # Share of each tracked stretch that the pen's paired camera (cam1-cam2, cam3-cam4 ...)
    # also sees at the same time, as a simultaneous duplicate tracklet of the same animal:
    # 0 (views apart) .. ~0.5 (views largely overlap); needs cameras_per_pen >= 2.
    camera_overlap_share: float = 0.0
    batches_per_day: int = 4  # uploads per device per day; windows of 24/n hours (divides 24)
    obs_interval_s: float = 30.0  # one observation row per tracklet every this many seconds
    samples_per_tracklet_max: int = 6  # most embedding samples per tracklet (edges: 1-6)
    sample_every_s: float = 600.0  # one more embedding sample per this many seconds of track
    embedding_dim: int = 384  # embedder output dimension
    embedder_name: str = "dinov3-vits16"  # embedder name written into every batch
    keyframes: bool = True  # render real JPEG crops (off for fast, big benchmarks)
    keyframe_size_px: tuple[int, int] = (64, 48)  # keyframe width, height in pixels
    keyframe_quality: int = 70  # JPEG quality of keyframes (1-95)
    image_size_px: tuple[int, int] = (1280, 720)  # camera frame width, height in pixels

    # --- growth (grow-finish pigs) ---------------------------------------------------
    initial_weight_kg: tuple[float, float] = (30.0, 100.0)  # pen cohorts span this on day 1, kg
    pen_weight_sd_kg: float = 4.0  # spread of start weights within a pen cohort, kg
    arrival_weight_kg: float = 30.0  # mean weight of pigs arriving from the nursery, kg
    mature_weight_kg: float = 260.0  # Gompertz asymptote A, kg
    growth_rate_per_day: float = 0.0095  # Gompertz rate B, 1/day (30->110 kg in ~97 days)
    growth_animal_cv: float = 0.07  # between-animal coefficient of variation of A and B
    daily_gain_cv: float = 0.3  # day-to-day coefficient of variation of gain (feed, gut fill)
    sale_weight_kg: float = 115.0  # mean weight at which a pig is sold, kg
    sale_weight_sd_kg: float = 4.0  # spread of sale weights, kg
    scale_noise_kg: float = 0.5  # standard deviation of a scale reading, kg
    weigh_every_days: int = 7  # herd weighing and lameness scoring interval, days

    # --- herd dynamics ---------------------------------------------------------------
    arrival_rate_per_day: float = 0.25  # new pigs per day (Poisson), put in the emptiest pen
    move_rate_per_day: float = 0.004  # chance per pig-day of a move to another pen (at 00:00)
    death_rate_per_day: float = 0.0003  # baseline mortality per pig-day (~3 % over grow-finish)
    sick_death_factor: float = 10.0  # mortality multiplier while sick

    # --- health ----------------------------------------------------------------------
    lameness_rate_per_day: float = 0.004  # new lameness episodes per pig-day
    lameness_days_median: float = 6.0  # median lameness episode length, days (lognormal)
    disease_rate_per_day: float = 0.003  # new respiratory/enteric episodes per pig-day
    disease_days_median: float = 6.0  # median disease episode length, days (lognormal)
    pen_contagion: float = 3.0  # incidence multiplier in a pen that holds a sick pig
    sick_growth_factor: float = 0.4  # growth while sick, relative to healthy
    score_agreement: float = 0.6  # chance a recorded lameness score equals the true one

    # --- behaviour and its observation -------------------------------------------------
    behaviour_error_rate: float = 0.08  # share of observations with a confusable wrong class
    gait_measure_share: float = 0.5  # share of walking observations that carry a gait score
    area_noise_cv: float = 0.06  # segmentation noise of area_px (coefficient of variation)
    speed_noise_sigma: float = 0.35  # lognormal sigma of speed_px_s around its behaviour mean
    # Share of lying bouts spent in one of the pen's few shared clumps of the day, with bbox
    # centres within ~1-2 body widths of each other: 0 (each pig lies apart) .. ~0.8 (pigs
    # huddle, as in cool barns).
    clump_share: float = 0.0

    # --- tracking --------------------------------------------------------------------
    tracklet_median_s: float = 1800.0  # median tracklet length (lognormal), seconds
    tracklet_sigma: float = 1.0  # lognormal sigma of tracklet lengths
    continuation_share: float = 0.6  # share of track breaks re-acquired seconds later
    continuation_gap_s: tuple[float, float] = (1.0, 8.0)  # gap range of a continuation, s
    # When set, continuation gaps are lognormal with this median instead of uniform in
    # `continuation_gap_s`: barns report medians of 5-60 s with a long tail (lying pigs
    # drop out of detection).
    reacquire_gap_median_s: float | None = None
    reacquire_gap_sigma: float = 1.0  # lognormal sigma of those gaps (0.5-1.5)
    # A break while the pig lies is re-acquired this many times later (1 = no
    # difference; 1-4: a lying pig is harder to detect).
    reacquire_lying_factor: float = 1.0
    # Share of tracklets in which the tracker jumps, at a random observation, to another
    # animal of the pen present at that moment and follows it to the tracklet's end:
    # 0 .. ~0.05 (1-5 % of tracklets in multi-minute clips).
    identity_switch_share: float = 0.0
    occlusion_gap_median_s: float = 240.0  # median untracked gap after an occlusion, s
    camera_switch_share: float = 0.3  # share of occlusions after which another camera sees it
    outage_rate: float = 0.01  # share of camera-hours with the camera down (no tracklets)
    outage_hours_mean: float = 2.0  # mean length of an outage, hours
    tag_read_rate: float = 0.01  # share of tracklets with an RFID read (at the feeder)

    # --- appearance embeddings (norms in embedding units before L2-normalising) ---------
    # Identity strength, as the per-tracklet oracle (each tracklet to the nearest true
    # centroid of its pen-day): with the other defaults identity_norm 0.2 gives ~0.70,
    # 0.25 ~0.86, 0.3 ~0.94, 0.45 ~0.99; with 3 samples per tracklet 0.255 gives ~0.75 and
    # 0.31 ~0.88, with 1 sample 0.31 gives ~0.55.
    breed_norm: float = 1.0  # the look shared by every pig
    identity_norm: float = 0.45  # per-animal identity offset (0.1-0.5, see above)
    near_twin_share: float = 0.1  # share of animals that have a near-twin (0-0.2)
    near_twin_distance: float = 0.12  # twin offset difference, relative to identity_norm
    drift_norm: float = 0.2  # per-animal appearance drift from 30 kg to 110 kg (0-0.6)
    common_drift_norm: float = 0.3  # appearance drift every pig shares with growth (0-0.6)
    # Growth drift keeps one direction per pig, so over weeks it adds to identity rather
    # than blurring it. This is the look's wander that does not follow growth (dirt,
    # scratches, marks): a fresh offset of this norm every 7 days, blended in between;
    # 0 .. ~0.4 (at 0.3 a week changes a pig's look about as much as identity_norm 0.31).
    drift_walk_norm: float = 0.0
    lighting_norm: float = 0.6  # per camera-day lighting nuisance (0.2-1.0)
    # How much posture and behaviour dominate the embedding: 0.3 (identity shows through)
    # .. 1.5 (a lying and a standing view of one pig differ more than two pigs do); at
    # identity_norm 0.31 with 3 samples, 1.0 takes the per-tracklet oracle from ~0.88 to ~0.64.
    posture_norm: float = 0.5  # per-behaviour posture nuisance (lying vs standing)
    tracklet_noise_norm: float = 0.7  # per-tracklet nuisance (pose, occlusion; 0.3-1.5)
    sample_noise_norm: float = 1.8  # per-sample noise at average quality
    quality_noise_gain: float = 2.0  # noise at quality 0 is (1 + gain) x noise at quality 1

    # --- breeding herd (config.breeding) ---------------------------------------------
    breeding: bool = False  # add sows with oestrus, insemination, pregnancy, farrowing
    sows: int = 12  # sows in the breeding herd
    sow_pens: int = 1  # pens of the breeding herd, after the grow-finish pens
    oestrus_cycle_days: float = 21.0  # mean oestrous cycle length, days
    conception_rate: float = 0.88  # chance an insemination leads to pregnancy
    gestation_days: float = 115.0  # mean gestation length, days
    lactation_days: float = 26.0  # mean days from farrowing to weaning
    litter_size_mean: float = 14.0  # mean total born per litter

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidInput("invalid SimulationConfig: " + "; ".join(problems))

    @property
    def n_pens(self) -> int:
        """Return the number of pens, breeding pens included."""
        return self.pens + (self.sow_pens if self.breeding else 0)

    @property
    def window_s(self) -> int:
        """Return the length of one upload window in seconds."""
        return 86_400 // self.batches_per_day

    def to_json(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict (dates as ISO strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out


def _problems(config: SimulationConfig) -> list[str]:
    """Return what is wrong with a config, as `field: problem` lines."""
    checks: list[tuple[bool, str]] = [
        (config.animals >= 0, "animals: must be >= 0"),
        (config.pens >= 1, "pens: must be >= 1"),
        (config.days >= 1, "days: must be >= 1"),
        (config.cameras_per_pen >= 1, "cameras_per_pen: must be >= 1"),
        (
            1 <= config.batches_per_day <= 24 and 24 % config.batches_per_day == 0,
            "batches_per_day: must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24)",
        ),
        (config.obs_interval_s >= 0.001, "obs_interval_s: must be >= 0.001"),
        (config.samples_per_tracklet_max >= 1, "samples_per_tracklet_max: must be >= 1"),
        (config.sample_every_s > 0, "sample_every_s: must be > 0"),
        (config.embedding_dim >= 2, "embedding_dim: must be >= 2"),
        (1 <= config.keyframe_quality <= 95, "keyframe_quality: must be in 1..95"),
        (min(config.keyframe_size_px) >= 8, "keyframe_size_px: must be at least 8x8"),
        (min(config.image_size_px) >= 160, "image_size_px: must be at least 160x160"),
        (config.initial_weight_kg[0] > 0, "initial_weight_kg: must be > 0"),
        (config.mature_weight_kg > config.sale_weight_kg, "mature_weight_kg: must exceed sale"),
        (config.tracklet_median_s > 0, "tracklet_median_s: must be > 0"),
        (config.outage_hours_mean >= 1, "outage_hours_mean: must be >= 1"),
        (config.sows >= 0 and config.sow_pens >= 1, "sows/sow_pens: need sows >= 0, pens >= 1"),
        (config.weigh_every_days >= 1, "weigh_every_days: must be >= 1"),
        (
            config.reacquire_gap_median_s is None or config.reacquire_gap_median_s > 0,
            "reacquire_gap_median_s: must be > 0 or None",
        ),
        (0.0 <= config.reacquire_gap_sigma <= 3.0, "reacquire_gap_sigma: must be in [0, 3]"),
        (config.reacquire_lying_factor >= 1.0, "reacquire_lying_factor: must be >= 1"),
        (config.drift_walk_norm >= 0.0, "drift_walk_norm: must be >= 0"),
        (
            config.camera_overlap_share == 0.0 or config.cameras_per_pen >= 2,
            "camera_overlap_share: needs cameras_per_pen >= 2",
        ),
    ]
    shares = (
        "continuation_share",
        "camera_switch_share",
        "outage_rate",
        "tag_read_rate",
        "near_twin_share",
        "behaviour_error_rate",
        "gait_measure_share",
        "score_agreement",
        "conception_rate",
        "clump_share",
        "camera_overlap_share",
        "identity_switch_share",
    )
    for name in shares:
        value = getattr(config, name)
        checks.append((0.0 <= value <= 1.0, f"{name}: must be in [0, 1], got {value}"))
    return [message for ok, message in checks if not ok]
