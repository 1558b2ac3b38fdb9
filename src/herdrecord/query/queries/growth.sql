-- name: growth
-- description: Average daily gain per animal over a window, ranked within its pen. ADG is the
-- description: slope of the scale weights when the window holds at least 3 of them (a scale is
-- description: exact to ~0.5 kg), else the slope of the daily weights estimated from standing
-- description: area (`adg_source` says which); both slopes are given. pen_percentile: the
-- description: animal's rank among its pen-mates, 0 = slowest, 100 = fastest; `slow` below
-- description: slow_percentile.
-- param: days integer = 28 [7, 365] -- length of the window, days
-- param: as_of date = null -- last day of the window; default: the record's last day
-- param: slow_percentile double = 25 [0, 100] -- flag animals ranked below this percentile of their pen
-- param: min_days integer = 7 [2, 365] -- fewest days with a weight estimate for an estimated ADG
WITH win AS (
    SELECT last_day - ($days - 1) AS first_day, last_day
    FROM (SELECT coalesce($as_of::DATE, (SELECT max(day) FROM days)) AS last_day)
),
estimated AS (
    SELECT d.animal_id, arg_max(d.pen_id, d.day) AS pen_id, min(d.day) AS first_day,
           max(d.day) AS last_day, count(d.weight_est_kg) AS estimates,
           regr_slope(d.weight_est_kg, d.day - w.first_day) AS adg_estimated_kg_d,
           regr_intercept(d.weight_est_kg, d.day - w.first_day)
               + regr_slope(d.weight_est_kg, d.day - w.first_day) * (w.last_day - w.first_day)
               AS weight_estimated_kg
    FROM days d, win w
    -- Whole days only (the coverage floor): a few minutes can be another animal's tracklet.
    WHERE d.day BETWEEN w.first_day AND w.last_day AND d.observed_min >= getvariable('coverage_floor_min')
    GROUP BY d.animal_id, w.first_day, w.last_day
),
weighed AS (
    SELECT e.animal_id, count(*) AS weighings,
           regr_slope(e.value, (epoch(e."at") - epoch(w.first_day)) / 86400) AS adg_scale_kg_d,
           arg_max(e.value, e."at") AS last_scale_kg
    FROM events e, win w
    WHERE e.kind = 'weight'
      AND CAST(timezone('UTC', e."at") AS DATE) BETWEEN w.first_day AND w.last_day
    GROUP BY e.animal_id
),
gains AS (
    SELECT s.*, coalesce(g.weighings, 0) AS weighings, g.adg_scale_kg_d, g.last_scale_kg,
           -- Three weighings: two can be a fluke of gut fill on one day.
           CASE WHEN g.weighings >= 3 THEN g.adg_scale_kg_d ELSE s.adg_estimated_kg_d END
               AS adg_kg_d,
           CASE WHEN g.weighings >= 3 THEN 'scale' ELSE 'estimate' END AS adg_source
    FROM estimated s LEFT JOIN weighed g USING (animal_id)
    WHERE g.weighings >= 3 OR s.estimates >= $min_days
),
ranked AS (
    SELECT *,
           100 * percent_rank() OVER (PARTITION BY pen_id ORDER BY adg_kg_d) AS pen_percentile,
           median(adg_kg_d) OVER (PARTITION BY pen_id) AS pen_median_adg_kg_d,
           count(*) OVER (PARTITION BY pen_id) AS pen_animals
    FROM gains WHERE adg_kg_d IS NOT NULL
)
SELECT animal_id, pen_id, first_day, last_day, round(adg_kg_d, 3) AS adg_kg_d, adg_source,
       CAST(round(pen_percentile) AS INTEGER) AS pen_percentile,
       pen_percentile < $slow_percentile AS slow,
       round(pen_median_adg_kg_d, 3) AS pen_median_adg_kg_d,
       CAST(pen_animals AS INTEGER) AS pen_animals,
       CAST(weighings AS INTEGER) AS weighings, round(adg_scale_kg_d, 3) AS adg_scale_kg_d,
       CAST(estimates AS INTEGER) AS estimates,
       round(adg_estimated_kg_d, 3) AS adg_estimated_kg_d,
       round(last_scale_kg, 1) AS last_scale_kg,
       round(weight_estimated_kg, 1) AS weight_estimated_kg
FROM ranked
ORDER BY pen_id, adg_kg_d, animal_id
