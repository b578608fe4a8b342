-- The occurrences of schedule `s` in (after, until], as the tick decides a
-- fire (BATCH.md §9.2): the latest one (NULL if none), how many there are,
-- and whether the count stopped at the scan cap of 1000 (then `occurrences`
-- means "at least 1000"; `latest` is still exact). Bounded work however far
-- back `after` is: cron through _cron_missed, interval and once directly.
-- `spec` is cron_parse(s.cron_expr) for a cron schedule (parsed by the
-- caller), ignored for the others.
create or replace function pgbatch._schedule_missed_parsed(s pgbatch.schedule, spec pgbatch.cron_spec,
                                                           after timestamptz, until timestamptz,
                                                           out latest timestamptz, out occurrences integer,
                                                           out capped boolean)
language plpgsql
stable
as $$
declare
    v_every numeric;
    v_hi    numeric;
    v_lo    numeric;
    v_n     numeric;
begin
    latest := null;
    occurrences := 0;
    capped := false;
    if until <= after then
        return;
    end if;
    if s.kind = 'cron' then
        select m.latest, m.occurrences, m.capped into latest, occurrences, capped
          from pgbatch._cron_missed(spec, s.tz, after, until, 1000) m;
    elsif s.kind = 'interval' then
        if until < s.anchor then
            return;
        end if;
        v_every := extract(epoch from s.every);
        v_hi := floor((extract(epoch from until) - extract(epoch from s.anchor)) / v_every);
        v_lo := case when after < s.anchor then 0
                     else floor((extract(epoch from after) - extract(epoch from s.anchor)) / v_every) + 1 end;
        if v_hi >= v_lo then
            v_n := v_hi - v_lo + 1;
            latest := s.anchor + (v_hi * v_every)::double precision * interval '1 second';
            occurrences := least(v_n, 1000)::integer;
            capped := v_n > 1000;
        end if;
    elsif s.kind = 'once' then
        if s.once_at > after and s.once_at <= until then
            latest := s.once_at;
            occurrences := 1;
        end if;
    end if;
end
$$;
