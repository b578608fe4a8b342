-- A parsed cron expression (pgbatch.cron_parse): the values each field
-- matches, as sorted int arrays, plus whether day-of-month and day-of-week
-- were restricted (their field does not start with '*'), which decides how the
-- two combine (Vixie cron: both restricted -> a day matches if EITHER matches;
-- otherwise both must). Weekdays are 0..6 with 0 = Sunday (7 is read as 0).
-- See docs/schedules.md.
create type pgbatch.cron_spec as (
    seconds             int[],
    minutes             int[],
    hours               int[],
    days                int[],
    months              int[],
    weekdays            int[],
    days_restricted     boolean,
    weekdays_restricted boolean
);
