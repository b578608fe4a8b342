-- Whether time zone `tz` has one UTC offset at all times: UTC and its aliases
-- and the fixed Etc/GMT+n / Etc/GMT-n zones. Cron evaluation in such a zone
-- needs no gap or fold handling (_cron_next_after, _cron_prev_at and
-- _cron_count take their short way).
create or replace function pgbatch._tz_fixed(tz text)
returns boolean
language sql
immutable
parallel safe
as $$
    select tz in ('UTC', 'Etc/UTC', 'GMT', 'Etc/GMT', 'UCT', 'Etc/UCT', 'Universal', 'Etc/Universal',
                  'Zulu', 'Etc/Zulu', 'Greenwich', 'Etc/Greenwich', 'GMT0', 'Etc/GMT0', 'GMT+0',
                  'Etc/GMT+0', 'GMT-0', 'Etc/GMT-0')
           or tz ~ '^Etc/GMT[+-][0-9]{1,2}$'
$$;
