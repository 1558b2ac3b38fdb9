-- name: reproduction
-- description: The breeding herd (animals with a breeding event and their pen-mates). Heat:
-- description: movement (mean speed, px/s: the camera's pedometer) over the last `days` days
-- description: up to as_of against the animal's own baseline_days before them; a rise above
-- description: rise_pct % suggests a coming or unnoticed heat (`heat_suspected`). Nesting before
-- description: a farrowing and the days after weaning raise it too: check the last event.
-- description: Activity (share of time walking, eating, drinking, exploring or interacting) and
-- description: lying share are given beside, and the same three changes around the latest
-- description: recorded oestrus, insemination or farrowing (its day +- around_days against
-- description: the baseline_days before).
-- param: as_of date = null -- the day judged; default: the record's last day
-- param: days integer = 2 [1, 14] -- recent days up to as_of compared with the baseline
-- param: baseline_days integer = 10 [3, 60] -- days before those: the animal's own baseline
-- param: around_days integer = 1 [0, 7] -- days either side of a recorded event
-- param: rise_pct double = 40 [0, 1000] -- rise in movement, %, that suggests a heat
WITH anchor AS (
    SELECT coalesce($as_of::DATE, (SELECT max(day) FROM days)) AS as_of
),
measured AS (
    -- Only whole days (observed for the coverage floor or more): a short day's shares are noise.
    SELECT animal_id, day, pen_id, lying_share, activity_index, mean_speed_px_s AS movement
    FROM days, anchor WHERE observed_min >= getvariable('coverage_floor_min') AND day <= anchor.as_of
),
breeding AS (
    SELECT e.animal_id, e.kind, e."at", CAST(timezone('UTC', e."at") AS DATE) AS on_day
    FROM events e, anchor
    WHERE e.kind IN ('oestrus', 'insemination', 'farrowing')
      AND CAST(timezone('UTC', e."at") AS DATE) <= anchor.as_of
),
herd AS (
    -- Sows are seldom labelled as such: the breeding herd is whoever shares a pen with a sow
    -- that has a breeding event, over the days judged.
    SELECT DISTINCT m.animal_id
    FROM measured m, anchor
    WHERE m.day BETWEEN anchor.as_of - ($days + $baseline_days - 1) AND anchor.as_of
      AND m.pen_id IN (
          SELECT d.pen_id FROM measured d
          WHERE d.animal_id IN (SELECT animal_id FROM breeding)
            AND d.day BETWEEN anchor.as_of - ($days + $baseline_days - 1) AND anchor.as_of
      )
),
recent AS (
    SELECT m.animal_id, arg_max(m.pen_id, m.day) AS pen_id,
           count(*) FILTER (m.day > a.as_of - $days) AS recent_n,
           count(*) FILTER (m.day <= a.as_of - $days) AS baseline_n,
           avg(m.movement) FILTER (m.day <= a.as_of - $days) AS baseline_movement,
           avg(m.movement) FILTER (m.day > a.as_of - $days) AS recent_movement,
           100 * (avg(m.movement) FILTER (m.day > a.as_of - $days)
               / nullif(avg(m.movement) FILTER (m.day <= a.as_of - $days), 0) - 1)
               AS movement_change_pct,
           100 * (avg(m.activity_index) FILTER (m.day > a.as_of - $days)
               / nullif(avg(m.activity_index) FILTER (m.day <= a.as_of - $days), 0) - 1)
               AS activity_change_pct,
           100 * (avg(m.lying_share) FILTER (m.day > a.as_of - $days)
               / nullif(avg(m.lying_share) FILTER (m.day <= a.as_of - $days), 0) - 1)
               AS lying_change_pct
    FROM measured m, anchor a
    WHERE m.animal_id IN (SELECT animal_id FROM herd)
      AND m.day BETWEEN a.as_of - ($days + $baseline_days - 1) AND a.as_of
    GROUP BY m.animal_id
),
latest AS (
    SELECT * FROM breeding
    QUALIFY row_number() OVER (PARTITION BY animal_id ORDER BY "at" DESC) = 1
),
around AS (
    SELECT l.animal_id,
           100 * (avg(m.movement) FILTER (m.day >= l.on_day - $around_days)
               / nullif(avg(m.movement) FILTER (m.day < l.on_day - $around_days), 0) - 1)
               AS event_movement_change_pct,
           100 * (avg(m.activity_index) FILTER (m.day >= l.on_day - $around_days)
               / nullif(avg(m.activity_index) FILTER (m.day < l.on_day - $around_days), 0) - 1)
               AS event_activity_change_pct,
           100 * (avg(m.lying_share) FILTER (m.day >= l.on_day - $around_days)
               / nullif(avg(m.lying_share) FILTER (m.day < l.on_day - $around_days), 0) - 1)
               AS event_lying_change_pct
    FROM latest l JOIN measured m
      ON m.animal_id = l.animal_id
     AND m.day BETWEEN l.on_day - $around_days - $baseline_days AND l.on_day + $around_days
    GROUP BY l.animal_id
)
SELECT r.animal_id, r.pen_id,
       r.recent_n >= 1 AND r.baseline_n >= 3 AND r.movement_change_pct > $rise_pct
           AS heat_suspected,
       round(r.movement_change_pct, 1) AS movement_change_pct,
       round(r.activity_change_pct, 1) AS activity_change_pct,
       round(r.lying_change_pct, 1) AS lying_change_pct,
       round(r.baseline_movement, 1) AS baseline_movement_px_s,
       round(r.recent_movement, 1) AS recent_movement_px_s,
       l.kind AS last_event, l."at" AS last_event_at,
       (SELECT as_of FROM anchor) - l.on_day AS days_since_event,
       round(a.event_movement_change_pct, 1) AS event_movement_change_pct,
       round(a.event_activity_change_pct, 1) AS event_activity_change_pct,
       round(a.event_lying_change_pct, 1) AS event_lying_change_pct
FROM recent r LEFT JOIN latest l USING (animal_id) LEFT JOIN around a USING (animal_id)
ORDER BY heat_suspected DESC, r.movement_change_pct DESC, r.animal_id
