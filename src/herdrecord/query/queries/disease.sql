-- name: disease
-- description: How behaviour and eating changed before a diagnosis. For each diagnosed
-- description: animal's first diagnosis (of the given code, or any) with a baseline behind it:
-- description: lying share, activity and eating share (eating minutes / observed minutes) over
-- description: the `days` days up to the diagnosis (its day included) against the animal's own
-- description: baseline_days before them, and the same change in pen-mates over the same days
-- description: with no diagnosis (the controls). excess_pct: the mean of the eating and activity
-- description: changes minus the controls' mean (% points); `changed` when it is below
-- description: -change_pct. controls_changed counts the controls the same rule, against the
-- description: other controls, calls changed: the false alarms to expect on those days.
-- param: code text = null -- only diagnoses with this code, e.g. PRRS; default: every code
-- param: days integer = 2 [1, 30] -- days up to and including the day of the diagnosis
-- param: baseline_days integer = 7 [3, 60] -- days before those: the animal's own baseline
-- param: change_pct double = 20 [0, 100] -- excess fall, % points, that counts as a change
WITH measured AS (
    -- Only whole days (observed for the coverage floor or more): a short day's shares are noise.
    SELECT animal_id, day, pen_id, lying_share, activity_index,
           eating_min / observed_min AS eating_share
    FROM days WHERE observed_min >= getvariable('coverage_floor_min')
),
diagnoses AS (
    SELECT animal_id, code, "at" AS diagnosed_at,
           CAST(timezone('UTC', "at") AS DATE) AS diagnosed_on
    FROM events WHERE kind = 'diagnosis'
),
windows AS (
    SELECT *, diagnosed_on - ($days - 1) AS window_from, diagnosed_on AS window_to,
           diagnosed_on - ($days - 1) - $baseline_days AS baseline_from,
           diagnosed_on - $days AS baseline_to
    FROM diagnoses WHERE $code::VARCHAR IS NULL OR code = $code::VARCHAR
),
changes AS (
    -- Every animal's change over every diagnosis window; cases and controls alike.
    SELECT w.animal_id AS case_id, w.code, w.diagnosed_at, w.window_from, w.window_to,
           w.baseline_from, w.baseline_to, d.animal_id,
           arg_max(d.pen_id, d.day) FILTER (d.day >= w.window_from) AS pen_id,
           count(*) FILTER (d.day <= w.baseline_to) AS baseline_n,
           count(*) FILTER (d.day >= w.window_from) AS window_n,
           100 * (avg(d.lying_share) FILTER (d.day >= w.window_from)
               / nullif(avg(d.lying_share) FILTER (d.day <= w.baseline_to), 0) - 1)
               AS lying_change_pct,
           100 * (avg(d.activity_index) FILTER (d.day >= w.window_from)
               / nullif(avg(d.activity_index) FILTER (d.day <= w.baseline_to), 0) - 1)
               AS activity_change_pct,
           100 * (avg(d.eating_share) FILTER (d.day >= w.window_from)
               / nullif(avg(d.eating_share) FILTER (d.day <= w.baseline_to), 0) - 1)
               AS eating_change_pct
    FROM windows w JOIN measured d ON d.day BETWEEN w.baseline_from AND w.window_to
    GROUP BY ALL
    HAVING count(*) FILTER (d.day <= w.baseline_to) >= 3
       AND count(*) FILTER (d.day >= w.window_from) >= 1
),
cases AS (
    -- The animal's first diagnosis with a baseline behind it.
    SELECT * FROM changes WHERE animal_id = case_id
    QUALIFY row_number() OVER (PARTITION BY animal_id ORDER BY diagnosed_at, code) = 1
),
controls AS (
    SELECT c.animal_id AS case_id, k.*
    FROM cases c JOIN changes k
      ON k.case_id = c.case_id AND k.diagnosed_at = c.diagnosed_at AND k.code = c.code
     AND k.pen_id = c.pen_id AND k.animal_id <> c.animal_id
    WHERE NOT EXISTS (
        SELECT 1 FROM diagnoses g
        WHERE g.animal_id = k.animal_id AND g.diagnosed_on BETWEEN c.baseline_from AND c.window_to
    )
),
pen AS (
    SELECT case_id, count(*) AS n, sum(activity_change_pct) AS activity_sum,
           sum(eating_change_pct) AS eating_sum, avg(lying_change_pct) AS lying_mean
    FROM controls GROUP BY case_id
),
controls_changed AS (
    -- Each control judged by the cases' rule against the mean of the other controls: how
    -- often a pen-mate without a diagnosis looks as changed over the same days.
    SELECT k.case_id, count(*) FILTER (
               (k.eating_change_pct - (p.eating_sum - k.eating_change_pct) / (p.n - 1)
                + k.activity_change_pct - (p.activity_sum - k.activity_change_pct) / (p.n - 1))
               / 2 < -$change_pct) AS n
    FROM controls k JOIN pen p USING (case_id) WHERE p.n >= 2 GROUP BY k.case_id
),
summary AS (
    SELECT c.*, coalesce(p.n, 0) AS controls, coalesce(g.n, 0) AS controls_changed,
           p.lying_mean AS controls_lying_change_pct,
           p.activity_sum / p.n AS controls_activity_change_pct,
           p.eating_sum / p.n AS controls_eating_change_pct,
           c.eating_change_pct - coalesce(p.eating_sum / p.n, 0) AS eating_excess_pct,
           c.activity_change_pct - coalesce(p.activity_sum / p.n, 0) AS activity_excess_pct
    FROM cases c LEFT JOIN pen p ON p.case_id = c.animal_id
    LEFT JOIN controls_changed g ON g.case_id = c.animal_id
)
SELECT animal_id, pen_id, code, diagnosed_at, window_from, window_to,
       (eating_excess_pct + activity_excess_pct) / 2 < -$change_pct AS changed,
       round((eating_excess_pct + activity_excess_pct) / 2, 1) AS excess_pct,
       round(eating_change_pct, 1) AS eating_change_pct,
       round(activity_change_pct, 1) AS activity_change_pct,
       round(lying_change_pct, 1) AS lying_change_pct,
       CAST(controls AS INTEGER) AS controls,
       round(controls_eating_change_pct, 1) AS controls_eating_change_pct,
       round(controls_activity_change_pct, 1) AS controls_activity_change_pct,
       round(controls_lying_change_pct, 1) AS controls_lying_change_pct,
       round(eating_excess_pct, 1) AS eating_excess_pct,
       round(activity_excess_pct, 1) AS activity_excess_pct,
       CAST(controls_changed AS INTEGER) AS controls_changed
FROM summary
ORDER BY code, eating_excess_pct + activity_excess_pct, animal_id
