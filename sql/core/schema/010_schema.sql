-- Schema pgbatch: tables are private; the SQL API is the functions in sql/*/functions/.
create schema if not exists pgbatch;

-- Schema metadata: the breaking-change level of this schema. Code that
-- supports a lower level refuses to start against it (see pgbatch/_install.py).
create table pgbatch.meta (
    key   text primary key,
    value text not null
);
insert into pgbatch.meta (key, value) values ('schema_compat', '1');
