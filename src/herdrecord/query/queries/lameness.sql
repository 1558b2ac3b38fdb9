-- name: lameness
-- description: Animals whose behaviour changed before a lameness score. For each animal's
-- description: worst score of at least min_score (the earliest if tied) with a baseline behind
-- description: it, the measure's mean over the `days` days up to the score (its day included:
-- description: an animal is scored once it is lame) is compared with the animal's own mean
-- description: over the baseline_days before them (at least 3 whole days, observed for the coverage floor);
-- description: listed when it moved more than change_pct % the way lameness moves it (lying
-- description: share up, activity down, gait score up). Controls: pen-mates over the same days
-- description: with no such score; their mean change is given beside, and controls_changed
-- description: counts those that moved as much: the false alarms to expect on those days.
-- param: min_score integer = 2 [0, 5] -- lowest lameness score that counts
-- param: days integer = 3 [1, 30] -- days up to and including the day of the score
-- param: baseline_days integer = 7 [3, 60] -- days before those: the animal's own baseline
-- param: measure text = lying_share {lying_share, activity_index, gait_mean} -- the measure compared
-- param: change_pct double = 5 [0, 1000] -- least change, %, the way lameness moves the measure
WITH measured AS (
    -- Only whole days (observed for the coverage floor or more): a short day's shares are noise.
    SELECT animal_id, day, pen_id, lying_share, activity_index, gait_mean,
           CASE $measure WHEN 'lying_share' THEN lying_share
                         WHEN 'activity_index' THEN activity_index ELSE gait_mean END AS m
    FROM days WHERE observed_min >= getvariable('coverage_floor_min')
),
scores AS (
    SELECT animal_id, value AS score, "at" AS scored_at,
           CAST(timezone('UTC', "at") AS DATE) AS scored_on
    FROM events WHERE kind = 'lameness' AND value >= $min_score
),
windows AS (
    SELECT *, scored_on - ($days - 1) AS window_from, scored_on AS window_to,
           scored_on - ($days - 1) - $baseline_days AS baseline_from,
           scored_on - $days AS baseline_to
    FROM scores
),
episodes AS (
    SELECT w.animal_id, w.score, w.scored_at, w.window_from, w.window_to, w.baseline_from,
           w.baseline_to,
           arg_max(d.pen_id, d.day) AS pen_id,
           count(*) FILTER (d.day <= w.baseline_to) AS baseline_n,
           count(*) FILTER (d.day >= w.window_from) AS window_n,
           avg(d.m) FILTER (d.day <= w.baseline_to) AS baseline_value,
           avg(d.m) FILTER (d.day >= w.window_from) AS window_value,
           100 * (avg(d.lying_share) FILTER (d.day >= w.window_from)
               / nullif(avg(d.lying_share) FILTER (d.day <= w.baseline_to), 0) - 1)
               AS lying_change_pct,
           100 * (avg(d.activity_index) FILTER (d.day >= w.window_from)
               / nullif(avg(d.activity_index) FILTER (d.day <= w.baseline_to), 0) - 1)
               AS activity_change_pct,
           100 * (avg(d.gait_mean) FILTER (d.day >= w.window_from)
               / nullif(avg(d.gait_mean) FILTER (d.day <= w.baseline_to), 0) - 1)
               AS gait_change_pct
    FROM windows w JOIN measured d
      ON d.animal_id = w.animal_id AND d.day BETWEEN w.baseline_from AND w.window_to
    GROUP BY ALL
),
cases AS (
    -- The animal's worst score, the earliest of equals, among those with a baseline behind it.
    SELECT * FROM episodes
    WHERE baseline_n >= 3 AND window_n >= 1
    QUALIFY row_number() OVER (PARTITION BY animal_id ORDER BY score DESC, scored_at) = 1
),
mates AS (
    SELECT DISTINCT c.animal_id AS case_id, d.animal_id
    FROM cases c JOIN measured d
      ON d.pen_id = c.pen_id AND d.day BETWEEN c.window_from AND c.window_to
     AND d.animal_id <> c.animal_id
    WHERE NOT EXISTS (
        SELECT 1 FROM scores s
        WHERE s.animal_id = d.animal_id AND s.scored_on BETWEEN c.baseline_from AND c.window_to
    )
),
controls AS (
    SELECT m.case_id, m.animal_id,
           100 * (avg(d.m) FILTER (d.day >= c.window_from)
               / nullif(avg(d.m) FILTER (d.day <= c.baseline_to), 0) - 1) AS change_pct
    FROM mates m JOIN cases c ON c.animal_id = m.case_id
    JOIN measured d ON d.animal_id = m.animal_id AND d.day BETWEEN c.baseline_from AND c.window_to
    GROUP BY ALL
    HAVING count(*) FILTER (d.day <= c.baseline_to) >= 3
       AND count(*) FILTER (d.day >= c.window_from) >= 1
),
summary AS (
    SELECT c.*,
           100 * (c.window_value / nullif(c.baseline_value, 0) - 1) AS change_pct,
           -- The way lameness moves the measure: activity falls, lying and gait score rise.
           CASE $measure WHEN 'activity_index' THEN -1 ELSE 1 END AS sign,
           (SELECT count(*) FROM controls k WHERE k.case_id = c.animal_id) AS controls,
           (SELECT avg(k.change_pct) FROM controls k WHERE k.case_id = c.animal_id)
               AS controls_change_pct,
           (SELECT count(*) FROM controls k WHERE k.case_id = c.animal_id
               AND (CASE $measure WHEN 'activity_index' THEN -1 ELSE 1 END) * k.change_pct
                   > $change_pct) AS controls_changed
    FROM cases c
)
SELECT animal_id, pen_id, CAST(score AS INTEGER) AS score, scored_at, window_from, window_to,
       $measure AS measure, round(baseline_value, 3) AS baseline_value,
       round(window_value, 3) AS window_value, round(change_pct, 1) AS change_pct,
       CAST(controls AS INTEGER) AS controls, round(controls_change_pct, 1) AS controls_change_pct,
       CAST(controls_changed AS INTEGER) AS controls_changed,
       round(change_pct - controls_change_pct, 1) AS excess_pct,
       round(lying_change_pct, 1) AS lying_change_pct,
       round(activity_change_pct, 1) AS activity_change_pct,
       round(gait_change_pct, 1) AS gait_change_pct
FROM summary
WHERE sign * change_pct > $change_pct
ORDER BY sign * change_pct DESC, animal_id
