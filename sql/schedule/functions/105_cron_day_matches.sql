-- Whether the local calendar day of `day` matches the day fields of `spec`:
-- day-of-month and day-of-week both restricted -> either may match (Vixie
-- cron); otherwise both must (an unrestricted field matches every day, or,
-- as in Vixie cron, the days its '*/n' step selects).
create or replace function pgbatch._cron_day_matches(spec pgbatch.cron_spec, day timestamp)
returns boolean
language sql
immutable
parallel safe
as $$
    select case when spec.days_restricted and spec.weekdays_restricted
                then extract(day from day)::int = any(spec.days)
                     or extract(dow from day)::int = any(spec.weekdays)
                else extract(day from day)::int = any(spec.days)
                     and extract(dow from day)::int = any(spec.weekdays)
           end
$$;
