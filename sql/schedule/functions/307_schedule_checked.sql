-- Validates a schedule row before it is stored and returns it with its
-- target and definition hash filled in. Refusals (nothing is
-- changed): InvalidSchedule (PB061) for a bad name, kind, field of another
-- kind, interval (zero, negative, or with months), threshold, window,
-- overlap policy or target; InvalidCron (PB020); InvalidTimeZone (PB021);
-- InvalidTime (PB013) for anchor and once_at; InvalidQueueName (PB005);
-- InvalidPayload (PB006) for a payload template that is not a JSON object;
-- JobNotRegistered (PB042) for a batch job no worker registered;
-- InvalidJobParameters (PB040) for a bad parameter template.
create or replace function pgbatch._schedule_checked(s pgbatch.schedule)
returns pgbatch.schedule
language plpgsql
stable
as $$
begin
    if s.id is null or s.id !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/@+-]*$' or length(s.id) > 200 then
        perform pgbatch._raise('PB061', format('invalid schedule name %s: 1 to 200 characters of letters, '
            'digits and _ . : / @ + -, not starting with a punctuation mark', coalesce(quote_literal(left(s.id, 80)), 'NULL')));
    end if;
    if s.kind is null or s.kind not in ('cron', 'interval', 'once', 'manual') then
        perform pgbatch._raise('PB061', format('schedule %s: invalid kind %s, must be cron, interval, once or manual',
                                               s.id, coalesce(quote_literal(s.kind), 'NULL')));
    end if;
    if (s.cron_expr is not null) <> (s.kind = 'cron') then
        perform pgbatch._raise('PB061', format('schedule %s: a %s schedule %s', s.id, s.kind,
            case when s.kind = 'cron' then 'needs cron_expr' else 'takes no cron_expr' end));
    end if;
    if (s.every is not null) <> (s.kind = 'interval') or (s.anchor is not null) <> (s.kind = 'interval') then
        perform pgbatch._raise('PB061', format('schedule %s: a %s schedule %s', s.id, s.kind,
            case when s.kind = 'interval' then 'needs every' else 'takes no every or anchor' end));
    end if;
    if (s.once_at is not null) <> (s.kind = 'once') then
        perform pgbatch._raise('PB061', format('schedule %s: a %s schedule %s', s.id, s.kind,
            case when s.kind = 'once' then 'needs once_at' else 'takes no once_at' end));
    end if;
    perform pgbatch._check(pgbatch._tz_problem(s.tz));
    if s.kind = 'cron' then
        perform pgbatch.cron_parse(s.cron_expr);
    end if;
    if s.kind = 'interval' then
        if extract(year from s.every) <> 0 or extract(month from s.every) <> 0 then
            perform pgbatch._raise('PB061', format('schedule %s: invalid every %s: months and years have no fixed '
                'length (use a cron schedule for calendar periods)', s.id, quote_literal(s.every::text)));
        end if;
        if extract(epoch from s.every) < 1 then
            perform pgbatch._raise('PB061', format('schedule %s: invalid every %s: must be at least 1 second',
                                                   s.id, quote_literal(s.every::text)));
        end if;
        perform pgbatch._check(pgbatch._cron_time_problem('anchor', s.anchor));
    end if;
    if s.kind = 'once' then
        perform pgbatch._check(pgbatch._cron_time_problem('once_at', s.once_at));
    end if;
    if s.misfire_threshold is null or s.misfire_threshold < interval '0' then
        perform pgbatch._raise('PB061', format('schedule %s: invalid misfire_threshold %s: must be zero or more',
                                               s.id, coalesce(quote_literal(s.misfire_threshold::text), 'NULL')));
    end if;
    if s.catchup_window < interval '0' then
        perform pgbatch._raise('PB061', format('schedule %s: invalid catchup_window %s: must be zero or more '
                                               '(NULL: no catch-up)', s.id, quote_literal(s.catchup_window::text)));
    end if;
    if s.overlap_policy is null or s.overlap_policy not in ('allow', 'skip', 'queue') then
        perform pgbatch._raise('PB061', format('schedule %s: invalid overlap_policy %s, must be allow, skip or queue',
                                               s.id, coalesce(quote_literal(s.overlap_policy), 'NULL')));
    end if;
    if (s.queue is null) = (s.job_name is null) then
        perform pgbatch._raise('PB061', format('schedule %s: give exactly one target: a queue (and payload) '
                                               'or a job_name (and params)', s.id));
    end if;
    if s.queue is not null then
        s.target := 'queue';
        if s.params is not null then
            perform pgbatch._raise('PB061', format('schedule %s: params are for a batch target (job_name); '
                                                   'a queue target takes a payload', s.id));
        end if;
        perform pgbatch._check_queue(s.queue);
        s.payload := coalesce(s.payload, '{}');
        if jsonb_typeof(s.payload) <> 'object' then
            perform pgbatch._raise('PB006', format('schedule %s: invalid payload template: must be a JSON object, '
                                                   'got %s', s.id, jsonb_typeof(s.payload)));
        end if;
    else
        s.target := 'batch';
        if s.payload is not null then
            perform pgbatch._raise('PB061', format('schedule %s: a payload is for a queue target; '
                                                   'a batch target (job_name) takes params', s.id));
        end if;
        if not exists (select 1 from pgbatch.job_definition d where d.job_name = s.job_name) then
            perform pgbatch._raise('PB042', format('job %s is not registered', to_json(s.job_name)),
                                   'a worker registers the jobs it can run (register_job) when it starts');
        end if;
        s.params := coalesce(s.params, '{}');
        if jsonb_typeof(s.params) <> 'object' then
            perform pgbatch._raise('PB040', format('invalid job parameters: the parameter template of schedule %s '
                                                   'must be a JSON object', s.id));
        end if;
        if s.params ? 'schedule' or s.params ? 'fire_at' then
            perform pgbatch._raise('PB040', format('invalid job parameters: schedule %s: "schedule" and "fire_at" '
                                                   'are set by the scheduler', s.id));
        end if;
        perform pgbatch._batch_params(s.params);
    end if;
    s.definition_hash := encode(sha256(convert_to(jsonb_build_array(
        s.kind, s.cron_expr, s.tz, s.every::text,
        to_char(s.anchor at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        to_char(s.once_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))::text, 'UTF8')), 'hex');
    return s;
end
$$;
