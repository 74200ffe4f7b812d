-- tool: DBeaver 25.x (PostgreSQL driver, pgjdbc 42.7.x)
-- source: D = dbeaver/dbeaver plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/ (PostgreDataSource.java, PostgreExecutionContext/PostgreDatabase.java, PostgreSchema.java: TableCache, ConstraintCache, IndexCache, ProceduresCache) -- prepared statements with ? parameters (setLong -> int8, setString -> varchar)
-- source: E = captured DBeaver statements in YottaDB/YDBOcto tests/fixtures/TDCQ01.sql ("OCTO985: DBeaver: Connect queries"; Octo replaced the $1 oids with literals, restored here as parameters where D shows a ? placeholder)
-- source: F = datafusion-contrib/datafusion-postgres datafusion-postgres/tests/dbeaver.rs (DBeaver 25.1.5 connect sequence; its pg_settings / keyword statements contain typos and were taken from D/E instead)
-- source: G = pgjdbc TypeInfoCache.java (type lookups pgjdbc issues when a result column has a type oid it does not know, e.g. aclitem[] 1034 in pg_namespace.nspacl)
-- Reconstructed (no source text found): the data-viewer SELECT at the end (DBeaver reads the table with plain SELECT * and a JDBC maxRows limit).
-- oid parameters: public = 16385 (stable), pnl = 16474 (observed once; table oids change between server restarts, e.g. 16410 after a restart), so the oid-keyed browse statements carry no expect-rows; a runner may substitute the live oid of public.pnl.
-- All statements go through pgjdbc (extended protocol).
-- step: connect
-- protocol: extended
SET extra_float_digits = 3;
-- step: connect
-- protocol: extended
SET application_name = 'PostgreSQL JDBC Driver';
-- step: connect
-- protocol: extended
SET application_name = 'DBeaver 25.1.5 - Main <amoeba>';
-- step: connect
-- protocol: extended
-- params: text:amoeba
-- expect-rows: >0
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname=$1;
-- step: connect
-- protocol: extended
-- expect-rows: >0
SELECT version();
-- step: connect
-- protocol: extended
-- expect-rows: >0
SELECT current_schema(),session_user;
-- step: connect
-- protocol: extended
SHOW search_path;
-- step: connect
-- protocol: extended
-- expect-rows: >0
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname;
-- step: connect (pgjdbc TypeInfoCache.getPGType(oid) for aclitem[])
-- protocol: extended
-- params: int4:1034
SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = $1;
-- step: connect (pgjdbc TypeInfoCache.getSQLType(oid))
-- protocol: extended
-- params: int4:1034
SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE pg_type.oid = $1  ORDER BY sp.r, pg_type.oid DESC;
-- step: connect (pgjdbc TypeInfoCache.getPGArrayElement(oid))
-- protocol: extended
-- params: int4:1034
SELECT e.oid, n.nspname = ANY(current_schemas(true)), n.nspname, e.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type e ON t.typelem = e.oid JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = $1;
-- step: connect (SettingCache)
-- protocol: extended
-- params: text:standard_conforming_strings
-- expect-rows: >0
select * from pg_catalog.pg_settings where name=$1;
-- step: connect (pgjdbc getSQLKeywords, called by DBeaver's dialect; word list as captured in E, ::text[] as in pgjdbc)
-- protocol: extended
select string_agg(word, ',') from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,absolute,action,ada,add,admin,after,all,allocate,alter,always,and,any,are,array,as,asc,asensitive,assertion,assignment,asymmetric,at,atomic,attribute,attributes,authorization,avg,before,begin,bernoulli,between,bigint,binary,blob,boolean,both,breadth,by,c,call,called,cardinality,cascade,cascaded,case,cast,catalog,catalog_name,ceil,ceiling,chain,char,char_length,character,character_length,character_set_catalog,character_set_name,character_set_schema,characteristics,characters,check,checked,class_origin,clob,close,coalesce,cobol,code_units,collate,collation,collation_catalog,collation_name,collation_schema,collect,column,column_name,command_function,command_function_code,commit,committed,condition,condition_number,connect,connection_name,constraint,constraint_catalog,constraint_name,constraint_schema,constraints,constructors,contains,continue,convert,corr,corresponding,count,covar_pop,covar_samp,create,cross,cube,cume_dist,current,current_collation,current_date,current_default_transform_group,current_path,current_role,current_time,current_timestamp,current_transform_group_for_type,current_user,cursor,cursor_name,cycle,data,date,datetime_interval_code,datetime_interval_precision,day,deallocate,dec,decimal,declare,default,defaults,deferrable,deferred,defined,definer,degree,delete,dense_rank,depth,deref,derived,desc,describe,descriptor,deterministic,diagnostics,disconnect,dispatch,distinct,domain,double,drop,dynamic,dynamic_function,dynamic_function_code,each,element,else,end,end-exec,equals,escape,every,except,exception,exclude,excluding,exec,execute,exists,exp,external,extract,false,fetch,filter,final,first,float,floor,following,for,foreign,fortran,found,free,from,full,function,fusion,g,general,get,global,go,goto,grant,granted,group,grouping,having,hierarchy,hold,hour,identity,immediate,implementation,in,including,increment,indicator,initially,inner,inout,input,insensitive,insert,instance,instantiable,int,integer,intersect,intersection,interval,into,invoker,is,isolation,join,k,key,key_member,key_type,language,large,last,lateral,leading,left,length,level,like,ln,local,localtime,localtimestamp,locator,lower,m,map,match,matched,max,maxvalue,member,merge,message_length,message_octet_length,message_text,method,min,minute,minvalue,mod,modifies,module,month,more,multiset,mumps,name,names,national,natural,nchar,nclob,nesting,new,next,no,none,normalize,normalized,not,"null",nullable,nullif,nulls,number,numeric,object,octet_length,octets,of,old,on,only,open,option,options,or,order,ordering,ordinality,others,out,outer,output,over,overlaps,overlay,overriding,pad,parameter,parameter_mode,parameter_name,parameter_ordinal_position,parameter_specific_catalog,parameter_specific_name,parameter_specific_schema,partial,partition,pascal,path,percent_rank,percentile_cont,percentile_disc,placing,pli,position,power,preceding,precision,prepare,preserve,primary,prior,privileges,procedure,public,range,rank,read,reads,real,recursive,ref,references,referencing,regr_avgx,regr_avgy,regr_count,regr_intercept,regr_r2,regr_slope,regr_sxx,regr_sxy,regr_syy,relative,release,repeatable,restart,result,return,returned_cardinality,returned_length,returned_octet_length,returned_sqlstate,returns,revoke,right,role,rollback,rollup,routine,routine_catalog,routine_name,routine_schema,row,row_count,row_number,rows,savepoint,scale,schema,schema_name,scope_catalog,scope_name,scope_schema,scroll,search,second,section,security,select,self,sensitive,sequence,serializable,server_name,session,session_user,set,sets,similar,simple,size,smallint,some,source,space,specific,specific_name,specifictype,sql,sqlexception,sqlstate,sqlwarning,sqrt,start,state,statement,static,stddev_pop,stddev_samp,structure,style,subclass_origin,submultiset,substring,sum,symmetric,system,system_user,table,table_name,tablesample,temporary,then,ties,time,timestamp,timezone_hour,timezone_minute,to,top_level_count,trailing,transaction,transaction_active,transactions_committed,transactions_rolled_back,transform,transforms,translate,translation,treat,trigger,trigger_catalog,trigger_name,trigger_schema,trim,true,type,uescape,unbounded,uncommitted,under,union,unique,unknown,unnamed,unnest,update,upper,usage,user,user_defined_type_catalog,user_defined_type_code,user_defined_type_name,user_defined_type_schema,using,value,values,var_pop,var_samp,varchar,varying,view,when,whenever,where,width_bucket,window,with,within,without,work,write,year,zone}'::text[]);
-- step: connect (feature probes)
-- protocol: extended
SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1;
-- step: connect (feature probes)
-- protocol: extended
SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1;
-- step: connect (PostgreDataTypeCache)
-- protocol: extended
-- expect-rows: >0
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C');
-- step: navigator (roles)
-- protocol: extended
SELECT a.oid,a.*,pd.description FROM pg_catalog.pg_roles a left join pg_catalog.pg_shdescription pd on a.oid = pd.objoid ORDER BY a.rolname;
-- step: navigator (tablespaces)
-- protocol: extended
SELECT t.oid,t.*,pg_tablespace_location(t.oid) loc FROM pg_catalog.pg_tablespace t ORDER BY t.oid;
-- step: navigator (encodings)
-- protocol: extended
SELECT c.contoencoding as encid,pg_catalog.pg_encoding_to_char(c.contoencoding) as encname FROM pg_catalog.pg_conversion c GROUP BY c.contoencoding ORDER BY 2;
-- step: navigator (database comment)
-- protocol: extended
-- params: text:amoeba
select description from pg_shdescription join pg_database on objoid = pg_database.oid where datname = $1;
-- step: browse schema public (TableCache)
-- protocol: extended
-- params: int8:16385
-- expect-rows: >0
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key , dep.objid, dep.refobjsubid
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
LEFT OUTER JOIN pg_depend dep on dep.refobjid = c."oid" AND dep.deptype = 'i' and dep.refobjsubid <> 0 and dep.classid = dep.refclassid
WHERE c.relnamespace=$1 AND c.relkind not in ('i','I','c');
-- step: browse schema public (table statistics)
-- protocol: extended
-- params: int8:16385
select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size FROM pg_class c WHERE c.relnamespace=$1;
-- step: browse table pnl (attributes)
-- protocol: extended
-- params: int8:16474
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=$1 ORDER BY a.attnum;
-- step: browse table pnl (constraints)
-- protocol: extended
-- params: int8:16474
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy FROM pg_catalog.pg_constraint c INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass WHERE c.conrelid=$1 ORDER BY c.oid;
-- step: browse table pnl (references)
-- protocol: extended
-- params: int8:16474
SELECT DISTINCT connamespace FROM pg_catalog.pg_constraint WHERE confrelid=$1;
-- step: browse table pnl (indexes)
-- protocol: extended
-- params: int8:16474
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid WHERE i.indrelid=$1 ORDER BY c.relname;
-- step: browse table pnl (inheritance)
-- protocol: extended
-- params: int8:16474
SELECT i.*,c.relnamespace FROM pg_catalog.pg_inherits i,pg_catalog.pg_class c WHERE i.inhrelid=$1 AND c.oid=i.inhparent ORDER BY i.inhseqno;
-- step: browse table pnl (triggers)
-- protocol: extended
-- params: int8:16474
SELECT x.oid,x.*,p.pronamespace as func_schema_id,d.description FROM pg_catalog.pg_trigger x LEFT OUTER JOIN pg_catalog.pg_proc p ON p.oid=x.tgfoid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=x.oid AND d.objsubid=0 WHERE x.tgrelid = $1 AND NOT x.tgisinternal;
-- step: browse table pnl (rules)
-- protocol: extended
-- params: int8:16474
SELECT r.oid,r.*, pg_get_ruledef(r.oid) AS definition FROM pg_rewrite r WHERE r.ev_class=$1 AND r.rulename <> '_RETURN'::name;
-- step: browse table pnl (policies; literal values as captured in E)
-- protocol: extended
select * from pg_catalog.pg_policies where schemaname='public' and tablename='pnl';
-- step: browse table pnl (data viewer; RECONSTRUCTED)
-- protocol: extended
-- expect-rows: >0
SELECT * FROM public.pnl;
