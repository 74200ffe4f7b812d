-- tool: Tableau Desktop, PostgreSQL connector through the PostgreSQL ODBC driver (psqlODBC 13+; the connector SDK sample "postgres_odbc")
-- source: M = statements recorded in gigaspaces xap tests, OdbcMetadataQueryTest.java ("Queries executed while creating a datasource" with the PostgreSQL ODBC driver: SET DateStyle, SET extra_float_digits = 2, show transaction_isolation, lo type probe, show max_identifier_length, SQLTables, SQLColumns, SQLPrimaryKeys, SQLForeignKeys); table/oid literals adapted to public.pnl
-- source: N = postgresql-interfaces/psqlodbc info.c (PGAPI_Tables builds "select relname, nspname, relkind from pg_catalog.pg_class c, pg_catalog.pg_namespace n where relkind in (...) ... and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') ... order by nspname, relname"; PGAPI_Columns/PrimaryKeys/ForeignKeys)
-- NOT FOUND: Tableau's own SQL (connection-time capability probes, temp-table checks, the data-preview / extract SELECTs) is closed source and no capture was found; only the ODBC driver's catalog calls are included. Newer Tableau releases may use the PostgreSQL JDBC driver instead (then see dbeaver.sql/metabase.sql for the pgjdbc texts).
-- Protocol: psqlODBC sends the connect-time SET/SHOW with the simple protocol; catalog functions go through PGAPI_ExecDirect, which with the default UseServerSidePrepare=1 is sent as Parse/Bind/Execute without parameters ("extended"). Literals are escaped client-side (psqlODBC escapes "_" in LIKE patterns as \_).
-- step: connect
-- protocol: simple
SET DateStyle = 'ISO';
-- step: connect
-- protocol: simple
SET extra_float_digits = 2;
-- step: connect
-- protocol: simple
-- expect-rows: >0
show transaction_isolation;
-- step: connect
-- protocol: extended
select oid, typbasetype from pg_type where typname = 'lo';
-- step: connect
-- protocol: simple
-- expect-rows: >0
show max_identifier_length;
-- step: list databases (SQLTables with SQL_ALL_CATALOGS; text from N and M)
-- protocol: extended
select NULL, NULL, NULL;
-- step: list schemas (SQLTables with SQL_ALL_SCHEMAS; assembled from the pieces in N)
-- protocol: extended
-- expect-rows: >0
select NULL, nspname, NULL from pg_catalog.pg_namespace n where true and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') order by nspname;
-- step: list tables (SQLTables)
-- protocol: extended
-- expect-rows: >0
select relname, nspname, relkind from pg_catalog.pg_class c, pg_catalog.pg_namespace n where relkind in ('r', 'v', 'm', 'f', 'p') and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') and n.oid = relnamespace order by nspname, relname;
-- step: browse table pnl (SQLColumns by name)
-- protocol: extended
-- expect-rows: >0
select n.nspname, c.relname, a.attname, a.atttypid, t.typname, a.attnum, a.attlen, a.atttypmod, a.attnotnull, c.relhasrules, c.relkind, c.oid, pg_get_expr(d.adbin, d.adrelid), case t.typtype when 'd' then t.typbasetype else 0 end, t.typtypmod, 0, attidentity, c.relhassubclass from (((pg_catalog.pg_class c inner join pg_catalog.pg_namespace n on n.oid = c.relnamespace and c.relname like 'pnl' and n.nspname like 'public') inner join pg_catalog.pg_attribute a on (not a.attisdropped) and a.attnum > 0 and a.attrelid = c.oid) inner join pg_catalog.pg_type t on t.oid = a.atttypid) left outer join pg_attrdef d on a.atthasdef and d.adrelid = a.attrelid and d.adnum = a.attnum order by n.nspname, c.relname, attnum;
-- step: browse table cubes.unit_monthly (SQLColumns by name; "_" escaped in the LIKE pattern)
-- protocol: extended
-- expect-rows: >0
select n.nspname, c.relname, a.attname, a.atttypid, t.typname, a.attnum, a.attlen, a.atttypmod, a.attnotnull, c.relhasrules, c.relkind, c.oid, pg_get_expr(d.adbin, d.adrelid), case t.typtype when 'd' then t.typbasetype else 0 end, t.typtypmod, 0, attidentity, c.relhassubclass from (((pg_catalog.pg_class c inner join pg_catalog.pg_namespace n on n.oid = c.relnamespace and c.relname like 'unit\_monthly' and n.nspname like 'cubes') inner join pg_catalog.pg_attribute a on (not a.attisdropped) and a.attnum > 0 and a.attrelid = c.oid) inner join pg_catalog.pg_type t on t.oid = a.atttypid) left outer join pg_attrdef d on a.atthasdef and d.adrelid = a.attrelid and d.adnum = a.attnum order by n.nspname, c.relname, attnum;
-- step: browse table pnl (SQLColumns for a result set, by table oid; 16474 is the pnl oid seen on this demo server, oids change between restarts)
-- protocol: extended
select n.nspname, c.relname, a.attname, a.atttypid, t.typname, a.attnum, a.attlen, a.atttypmod, a.attnotnull, c.relhasrules, c.relkind, c.oid, pg_get_expr(d.adbin, d.adrelid), case t.typtype when 'd' then t.typbasetype else 0 end, t.typtypmod, 0, attidentity, c.relhassubclass from (((pg_catalog.pg_class c inner join pg_catalog.pg_namespace n on n.oid = c.relnamespace and c.oid = 16474) inner join pg_catalog.pg_attribute a on (not a.attisdropped) and a.attnum > 0 and a.attrelid = c.oid) inner join pg_catalog.pg_type t on t.oid = a.atttypid) left outer join pg_attrdef d on a.atthasdef and d.adrelid = a.attrelid and d.adnum = a.attnum order by n.nspname, c.relname, attnum;
-- step: browse table pnl (SQLPrimaryKeys)
-- protocol: extended
select ta.attname, ia.attnum, ic.relname, n.nspname, tc.relname from pg_catalog.pg_attribute ta, pg_catalog.pg_attribute ia, pg_catalog.pg_class tc, pg_catalog.pg_index i, pg_catalog.pg_namespace n, pg_catalog.pg_class ic where tc.relname = 'pnl' AND n.nspname = 'public' AND tc.oid = i.indrelid AND n.oid = tc.relnamespace AND i.indisprimary = 't' AND ia.attrelid = i.indexrelid AND ta.attrelid = i.indrelid AND ta.attnum = i.indkey[ia.attnum-1] AND (NOT ta.attisdropped) AND (NOT ia.attisdropped) AND ic.oid = i.indexrelid order by ia.attnum;
-- step: browse table pnl (SQLForeignKeys)
-- protocol: extended
select  'amoeba'::name as "PKTABLE_CAT",
                n2.nspname as "PKTABLE_SCHEM",
                c2.relname as "PKTABLE_NAME",
                a2.attname as "PKCOLUMN_NAME",
                'amoeba'::name as "FKTABLE_CAT",
                n1.nspname as "FKTABLE_SCHEM",
                c1.relname as "FKTABLE_NAME",
                a1.attname as "FKCOLUMN_NAME",
                i::int2 as "KEY_SEQ",
                case ref.confupdtype
                        when 'c' then 0::int2
                        when 'n' then 2::int2
                        when 'd' then 4::int2
                        when 'r' then 1::int2
                        else 3::int2
                end as "UPDATE_RULE",
                case ref.confdeltype
                        when 'c' then 0::int2
                        when 'n' then 2::int2
                        when 'd' then 4::int2
                        when 'r' then 1::int2
                        else 3::int2
                end as "DELETE_RULE",
                ref.conname as "FK_NAME",
                cn.conname as "PK_NAME",
                case
                        when ref.condeferrable then
                                case
                                when ref.condeferred then 5::int2
                                else 6::int2
                                end
                        else 7::int2
                end as "DEFERRABILITY"
         from
         ((((((( (select cn.oid, conrelid, conkey, confrelid, confkey,
                 generate_series(array_lower(conkey, 1), array_upper(conkey, 1)) as i,
                 confupdtype, confdeltype, conname,
                 condeferrable, condeferred
          from pg_catalog.pg_constraint cn,
                pg_catalog.pg_class c,
                pg_catalog.pg_namespace n
          where contype = 'f'
           and  conrelid = c.oid
           and  relname = 'pnl'
           and  n.oid = c.relnamespace
           and  n.nspname = 'public'
         ) ref
         inner join pg_catalog.pg_class c1
          on c1.oid = ref.conrelid)
         inner join pg_catalog.pg_namespace n1
          on  n1.oid = c1.relnamespace)
         inner join pg_catalog.pg_attribute a1
          on  a1.attrelid = c1.oid
          and  a1.attnum = conkey[i])
         inner join pg_catalog.pg_class c2
          on  c2.oid = ref.confrelid)
         inner join pg_catalog.pg_namespace n2
          on  n2.oid = c2.relnamespace)
         inner join pg_catalog.pg_attribute a2
          on  a2.attrelid = c2.oid
          and  a2.attnum = confkey[i])
         left outer join pg_catalog.pg_constraint cn
          on cn.conrelid = ref.confrelid
          and cn.contype = 'p')
          order by ref.oid, ref.i;
